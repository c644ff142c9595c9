"""The BERT classifier: KerasHub's encoder against `transformers`' BertModel (the oracle) on
the real MiniLM weights, the dataset's tokeniser against the folder's own, bad folders
refused with what is wrong, nothing fetched over the network, and `ub.models.load`."""
import json
import pathlib
import shutil
import socket
import urllib.request

import numpy as np
import pytest

keras_hub = pytest.importorskip("keras_hub")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import uncertainty_baselines as ub  # noqa: E402
from uncertainty_baselines.datasets import local_builders  # noqa: E402
from uncertainty_baselines.models import bert  # noqa: E402
from uncertainty_baselines.runs import checkpoint, run_record  # noqa: E402

SEQ = 32
TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=64, max_position_embeddings=40, hidden_act="gelu")


@pytest.fixture
def no_network(monkeypatch):
    """Every connection or name lookup fails with OSError, as offline, and is recorded; the
    test fails if any was attempted (even when a library caught the error)."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError(f"network access attempted: {args}")
    for name in ("create_connection", "getaddrinfo"):
        monkeypatch.setattr(socket, name, refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    yield attempts
    assert attempts == [], f"network access attempted: {attempts}"


def test_the_network_guard_sees_a_download(no_network):
    with pytest.raises(OSError):
        urllib.request.urlopen("http://example.com", timeout=1)
    assert no_network
    no_network.clear()


def token_batch(vocab_size: int, lengths, seed: int = 0) -> dict[str, np.ndarray]:
    """Random [CLS] ... [SEP] rows of the given real lengths, zero padded to SEQ, the second
    segment on the last third of each row's real tokens."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocab_size, size=(len(lengths), SEQ)).astype(np.int32)
    positions = np.arange(SEQ)
    mask = (positions < np.array(lengths)[:, None]).astype(np.int32)
    segments = ((positions >= (2 * np.array(lengths) // 3)[:, None]) & (mask == 1)).astype(np.int32)
    return {"input_ids": ids * mask, "input_mask": mask, "segment_ids": segments}


def hf_outputs(hf_bert, batch) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        out = hf_bert(input_ids=torch.tensor(batch["input_ids"], dtype=torch.long),
                      attention_mask=torch.tensor(batch["input_mask"], dtype=torch.long),
                      token_type_ids=torch.tensor(batch["segment_ids"], dtype=torch.long))
    return out.last_hidden_state.numpy(), out.pooler_output.numpy()


def keras_outputs(model: keras.Model, batch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sequence output, pooled output and logits of a bert_classifier, in inference mode."""
    sequence = model.get_layer("bert_encoder")(
        {"token_ids": batch["input_ids"], "segment_ids": batch["segment_ids"],
         "padding_mask": batch["input_mask"]}, training=False)
    pooled = model.get_layer("pooled_dense")(sequence[:, 0, :])
    return np.asarray(sequence), np.asarray(pooled), np.asarray(model(batch, training=False))


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory) -> pathlib.Path:
    """A small random BERT saved as transformers saves a fine-tuned classifier: `bert.`
    prefixed encoder tensors plus classifier tensors, in model.safetensors."""
    path = tmp_path_factory.mktemp("tiny_bert")
    torch.manual_seed(0)
    config = transformers.BertConfig(**TINY, num_labels=3)
    transformers.BertForSequenceClassification(config).save_pretrained(path)
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"t{i}" for i in range(TINY["vocab_size"] - 5)]
    (path / "vocab.txt").write_text("\n".join(tokens) + "\n")
    return path


def copy_of(src: pathlib.Path, dst: pathlib.Path, config_changes=None) -> pathlib.Path:
    """A copy of the folder `src` with config.json values changed (None: key removed)."""
    shutil.copytree(src, dst)
    if config_changes:
        config = {**json.loads((dst / "config.json").read_text()), **config_changes}
        (dst / "config.json").write_text(json.dumps({k: v for k, v in config.items() if v is not None}))
    return dst


def test_minilm_classifier_equals_transformers_bert_model_with_padding(no_network):
    """Sequence and pooled outputs of the real MiniLM equal BertModel's to 1e-5 on rows of
    different lengths (padded positions masked), and the logits are the head on them."""
    model = ub.models.get("bert_classifier", num_classes=151)
    assert [t.name for t in model.inputs] == list(bert.INPUT_NAMES)
    hf_bert = transformers.BertModel.from_pretrained(bert.default_bert_dir(), local_files_only=True).eval()
    batch = token_batch(30522, lengths=[32, 20, 7, 2])
    sequence, pooled, logits = keras_outputs(model, batch)
    hf_sequence, hf_pooled = hf_outputs(hf_bert, batch)
    np.testing.assert_allclose(sequence, hf_sequence, atol=1e-5, rtol=0)
    np.testing.assert_allclose(pooled, hf_pooled, atol=1e-5, rtol=0)
    head = model.layers[-1]
    np.testing.assert_allclose(logits, pooled @ np.asarray(head.kernel) + np.asarray(head.bias), atol=1e-5)
    assert logits.shape == (4, 151)


def test_checkpoint_with_bert_prefix_and_head_tensors_loads(tiny_bert_dir, no_network):
    """A fine-tuned classifier's file (`bert.` prefix, classifier tensors) loads its encoder."""
    model = ub.models.get("bert_classifier", bert_dir=str(tiny_bert_dir), num_classes=3)
    hf = transformers.BertForSequenceClassification.from_pretrained(tiny_bert_dir, local_files_only=True)
    batch = token_batch(TINY["vocab_size"], lengths=[32, 9, 1])
    sequence, pooled, _ = keras_outputs(model, batch)
    hf_sequence, hf_pooled = hf_outputs(hf.bert.eval(), batch)
    np.testing.assert_allclose(sequence, hf_sequence, atol=1e-5, rtol=0)
    np.testing.assert_allclose(pooled, hf_pooled, atol=1e-5, rtol=0)


def test_every_trainable_variable_gets_a_gradient(tiny_bert_dir):
    model = ub.models.get("bert_classifier", bert_dir=str(tiny_bert_dir), num_classes=3)
    batch = token_batch(TINY["vocab_size"], lengths=[32, 5])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(batch, training=True) ** 2)
    grads = tape.gradient(loss, model.trainable_variables)
    assert [v.path for v, g in zip(model.trainable_variables, grads) if g is None] == []


@pytest.mark.parametrize("name", ["bert_classifier", "bert_sngp", "bert_mc_dropout"])
def test_adamw_decays_the_kernels_and_embeddings_of_the_real_models_only(tiny_bert_dir, name):
    from uncertainty_baselines.training import schedules
    model = ub.models.get(name, bert_dir=str(tiny_bert_dir), num_classes=3)
    optimizer = schedules.adamw(1e-3)
    optimizer.build(model.trainable_variables)
    kinds = {}
    for v in model.trainable_variables:
        kinds.setdefault(optimizer._use_weight_decay(v), set()).add(v.path.rsplit("/", 1)[-1])
    assert kinds == {True: {"kernel", "embeddings"}, False: {"gamma", "beta", "bias"}}
    # 6 kernels a transformer layer (query, key, value, attention output, two feed-forward),
    # pooler and head; token, position and segment embeddings.
    decayed = [v for v in model.trainable_variables if optimizer._use_weight_decay(v)]
    assert len(decayed) == 6 * TINY["num_hidden_layers"] + 2 + 3


@pytest.mark.parametrize("equation, bias_axes, split", [
    ("abc,cde->abde", "de", (1, 2)), ("abcd,cde->abe", "e", (2, 1)), ("abc,cd->abd", None, (1, 1)),
    ("abc,cde->abde", "d", None), ("abc,dce->abde", None, None), ("abcd,aecd->acbe", None, None)])
def test_matmul_split_accepts_only_one_matrix_product(equation, bias_axes, split):
    assert bert.matmul_split(equation, bias_axes) == split


def test_matmul_projections_equal_keras_einsum_in_value_and_gradient(tiny_bert_dir):
    """Every attention projection is a MatmulEinsumDense, and each computes what Keras'
    EinsumDense computes, with the same kernel gradient."""
    model = ub.models.get("bert_classifier", bert_dir=str(tiny_bert_dir), num_classes=3)
    attention = model.get_layer("bert_encoder").get_layer("transformer_layer_0")._self_attention_layer
    rng = np.random.default_rng(0)
    for name, shape in (("_query_dense", (2, 5, 32)), ("_output_dense", (2, 5, 4, 8))):
        layer = getattr(attention, name)
        assert type(layer) is bert.MatmulEinsumDense
        x = tf.constant(rng.normal(size=shape), tf.float32)
        with tf.GradientTape(persistent=True) as tape:
            ours = layer(x)
            theirs = keras.layers.EinsumDense.call(layer, x)
            losses = tf.reduce_sum(ours ** 2), tf.reduce_sum(theirs ** 2)
        np.testing.assert_allclose(ours, theirs, atol=1e-5)
        np.testing.assert_allclose(*(tape.gradient(loss, layer.kernel) for loss in losses), rtol=1e-4, atol=1e-5)


def test_dataset_tokeniser_equals_the_folders_hf_tokeniser(no_network):
    """clinc_intent's preparation tokeniser gives the ids of the folder's own tokenizer:
    an empty query is [CLS] [SEP], a long one is truncated to 32 ending in [SEP]."""
    queries = ["what's my bank balance?", "", "Héllo WÖRLD, transfer $1,234.50 to acct #9!",
               "set an alarm for 7am " * 12, "how do you say 猫 in Japanese"]
    ours = local_builders.tokenize(queries, bert.default_bert_dir() / "vocab.txt")
    hf = transformers.AutoTokenizer.from_pretrained(bert.default_bert_dir(), local_files_only=True)(
        queries, padding="max_length", truncation=True, max_length=SEQ, return_tensors="np")
    np.testing.assert_array_equal(ours["input_ids"], hf["input_ids"])
    np.testing.assert_array_equal(ours["input_mask"], hf["attention_mask"])
    np.testing.assert_array_equal(ours["segment_ids"], hf["token_type_ids"])
    assert list(ours["input_ids"][1, :3]) == [101, 102, 0]
    assert ours["input_mask"][3].all() and ours["input_ids"][3, -1] == 102


@pytest.mark.parametrize("name", ["config.json", "vocab.txt", "model.safetensors"])
def test_missing_file_is_named(tiny_bert_dir, tmp_path, name):
    folder = copy_of(tiny_bert_dir, tmp_path / "bert")
    (folder / name).unlink()
    with pytest.raises(FileNotFoundError, match=rf"missing \['{name}'\]"):
        ub.models.get("bert_classifier", bert_dir=str(folder))


def test_pickle_weights_are_refused_not_read(tiny_bert_dir, tmp_path):
    folder = copy_of(tiny_bert_dir, tmp_path / "bert")
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match=r"missing \['model.safetensors'\].*pytorch_model.bin"):
        bert.check_bert_dir(folder)


@pytest.mark.parametrize("changes, message", [
    ({"hidden_size": 48}, r"embeddings.word_embeddings.weight: config \(99, 48\), weights \(99, 32\)"),
    ({"num_hidden_layers": 1}, r"16 tensors in the weights but not in the config: \['encoder.layer.1."),
    ({"num_hidden_layers": 3}, r"16 tensors missing from the weights: \['encoder.layer.2."),
    ({"intermediate_size": 128}, r"encoder.layer.0.intermediate.dense.weight: config \(128, 32\)"),
    ({"vocab_size": 100}, r"vocab.txt has 99 tokens, config vocab_size 100"),
    ({"hidden_act": "relu"}, r"hidden_act='relu' \(supported: 'gelu'\)"),
    ({"num_attention_heads": None}, r"config.json: missing keys \['num_attention_heads'\]"),
])
def test_config_not_matching_the_folder_names_the_tensors(tiny_bert_dir, tmp_path, changes, message):
    folder = copy_of(tiny_bert_dir, tmp_path / "bert", changes)
    with pytest.raises(ValueError, match=message):
        bert.check_bert_dir(folder)


def test_unreadable_weights_and_non_folder(tiny_bert_dir, tmp_path):
    folder = copy_of(tiny_bert_dir, tmp_path / "bert")
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        bert.check_bert_dir(folder)
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        bert.check_bert_dir(tmp_path / "absent")


def test_models_load_rebuilds_the_trained_classifier(tiny_bert_dir, tmp_path):
    kwargs = {"bert_dir": str(tiny_bert_dir), "num_classes": 3, "seed": 1}
    model = ub.models.get("bert_classifier", **kwargs)
    for var in model.trainable_variables:  # Stand-in for fine-tuning: move every weight.
        var.assign(var + 0.01)
    run_dir = tmp_path / "run"
    checkpoint.save(run_dir / checkpoint.SUBDIR, 1, {"model": checkpoint.variables_to_arrays(model.variables)}, {})
    run_record.write_run_record(run_dir, flags={}, metrics={}, seed=1, data_fingerprint=None, wall_time_s=0.0,
                                model={"name": "bert_classifier", "kwargs": kwargs})
    batch = token_batch(TINY["vocab_size"], lengths=[32, 3])
    np.testing.assert_array_equal(np.asarray(ub.models.load(run_dir)(batch, training=False)),
                                  np.asarray(model(batch, training=False)))
