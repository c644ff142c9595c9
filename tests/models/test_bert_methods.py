"""The BERT method models on a tiny random BERT folder: `token_ids_only` computes the
three-input classifier's logits, `bert_mc_dropout` samples at test time inside the encoder
(its pooled-feature dropout acts in training only), `bert_sngp` starts from the pretrained
pooler (spectrally normalised) with a GP head."""
import keras
import numpy as np
import pytest

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
pytest.importorskip("keras_hub")

import uncertainty_baselines as ub  # noqa: E402
from uncertainty_baselines.models import bert  # noqa: E402

TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=40, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_bert")
    torch.manual_seed(0)
    transformers.BertModel(transformers.BertConfig(**TINY)).save_pretrained(path)
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"t{i}" for i in range(TINY["vocab_size"] - 5)]
    (path / "vocab.txt").write_text("\n".join(tokens) + "\n")
    return str(path)


def token_ids(lengths, seed=0):
    """[CLS] t ... [SEP] rows of the given lengths, zero padded to 32."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((len(lengths), 32), np.int32)
    for row, n in enumerate(lengths):
        ids[row, :n] = [2, *rng.integers(5, TINY["vocab_size"], n - 2), 3]
    return ids


def test_token_ids_only_equals_the_three_input_classifier(bert_dir):
    three = ub.models.get("bert_classifier", bert_dir=bert_dir, num_classes=5, seed=1)
    ids_only = ub.models.get("bert_classifier", bert_dir=bert_dir, num_classes=5, seed=1, token_ids_only=True)
    assert [v.shape for v in three.variables] == [v.shape for v in ids_only.variables]
    for source, target in zip(three.variables, ids_only.variables):
        target.assign(source)
    ids = token_ids([32, 9, 2])
    inputs = {"input_ids": ids, "input_mask": (ids != 0).astype(np.int32), "segment_ids": np.zeros_like(ids)}
    np.testing.assert_array_equal(np.asarray(ids_only(ids, training=False)), np.asarray(three(inputs, training=False)))


def test_mc_dropout_samples_inside_the_encoder_at_test_time(bert_dir):
    model = ub.models.get("bert_mc_dropout", bert_dir=bert_dir, num_classes=5, dropout_rate=0.3)
    ids = token_ids([12, 7])
    first, second = (np.asarray(model(ids, training=False)) for _ in range(2))
    assert not np.array_equal(first, second)
    layer = model.get_layer("bert_encoder").get_layer("transformer_layer_0")
    for name in bert.ENCODER_DROPOUTS:
        dropout = getattr(layer, name)
        assert isinstance(dropout, bert.AlwaysOnDropout) and dropout.rate == 0.3
        x = np.ones((2, 3, 32), np.float32)
        assert not np.array_equal(np.asarray(dropout(x, training=False)), x)
    # The pooled features' dropout acts in training only (the reference's MC dropout is off
    # on the output by default).
    [pooled_dropout] = [l for l in model.layers if isinstance(l, keras.layers.Dropout)]
    assert type(pooled_dropout) is keras.layers.Dropout and pooled_dropout.rate == 0.3
    x = np.ones((2, 32), np.float32)
    np.testing.assert_array_equal(np.asarray(pooled_dropout(x, training=False)), x)


def test_sngp_pooler_starts_from_the_pretrained_one(bert_dir):
    plain = ub.models.get("bert_classifier", bert_dir=bert_dir, num_classes=5, token_ids_only=True)
    model = ub.models.get("bert_sngp", bert_dir=bert_dir, num_classes=5, num_inducing=16, spec_norm_bound=100.0)
    pretrained, pooler = plain.get_layer("pooled_dense"), model.get_layer("pooled_dense_spectral_norm")
    assert isinstance(pooler, ub.layers.SpectralNormDense)
    np.testing.assert_array_equal(np.asarray(pooler.kernel), np.asarray(pretrained.kernel))
    np.testing.assert_array_equal(np.asarray(pooler.bias), np.asarray(pretrained.bias))
    x = np.random.default_rng(0).normal(size=(3, 32)).astype(np.float32)  # A loose bound leaves it unchanged.
    np.testing.assert_allclose(np.asarray(pooler(x, training=False)), np.asarray(pretrained(x)), atol=1e-6)
    assert isinstance(model.layers[-1], ub.layers.MeanFieldGaussianProcess)
    assert ub.layers.reset_covariances(model) == 1
    assert model(token_ids([5, 30]), training=False).shape == (2, 5)
