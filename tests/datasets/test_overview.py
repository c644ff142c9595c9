"""The overview command: counts, ranges and duplicates against hand-computed values,
the image grid, the text table and the tabular summary."""
import io
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

from uncertainty_baselines.datasets import overview
from uncertainty_baselines.datasets import local_builders as lb
from uncertainty_baselines.datasets.base import DataNotFoundError
from uncertainty_baselines.datasets.prepare import prepare


def test_summary_counts_ranges_and_duplicates_by_hand():
    a = np.zeros((2, 2, 1, 3), np.uint8)
    a[0] = [10, 20, 30]
    a[1] = [50, 60, 70]
    batches = [{"image": a, "label": np.array([1, 1])},
               {"image": a[:1].copy(), "label": np.array([0])}]  # Duplicate of example 0.
    s = overview.summarize_images(batches)
    assert s.count == 3 and s.class_counts == {1: 2, 0: 1}
    assert (s.value_min, s.value_max) == (10, 70)
    np.testing.assert_allclose(s.value_mean(), [(10 + 50 + 10) / 3, (20 + 60 + 20) / 3, (30 + 70 + 30) / 3])
    assert s.within_duplicates == 1


def test_cross_duplicates_pairs_first_occurrences():
    train, test = overview.SplitSummary(), overview.SplitSummary()
    values = np.zeros((4, 1))
    train.add(values, [0] * 4, [b"a", b"b", b"c", b"b"])
    test.add(values[:3], [0] * 3, [b"x", b"c", b"b"])
    assert overview.cross_duplicates(train, test) == [(1, 2), (2, 1)]


def png(image):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def tiny_cifar(tmp_path_factory):
    """2 train + 1 test image per class; test/cat/0000 is a copy of train/dog/0001."""
    root = tmp_path_factory.mktemp("overview")
    rng = np.random.default_rng(0)
    images = {}
    for split, n in (("train", 2), ("test", 1)):
        for name in lb.CIFAR10_CLASSES:
            for i in range(n):
                images[f"c/{split}/{name}/{i:04d}.png"] = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    images["c/test/cat/0000.png"] = images["c/train/dog/0001.png"]
    with zipfile.ZipFile(root / "c.zip", "w") as archive:
        for name, image in images.items():
            archive.writestr(name, png(image))
    prepare("cifar10", root / "c.zip", root / "data", check=False)
    return root, images


def test_image_report_and_grid(tiny_cifar, tmp_path):
    root, images = tiny_cifar
    out = tmp_path / "grid.png"
    report = overview.overview("cifar10", str(root / "data"), str(out), per_class=2)
    assert "[train] 20 examples" in report and "[test] 10 examples" in report
    assert "airplane=2, automobile=2" in report and "truck=1" in report
    train = np.stack([v for k, v in images.items() if "/train/" in k])
    assert f"min {train.min()}, max {train.max()}" in report
    assert "exact duplicates train/test: 1 (train#" in report
    assert "exact duplicates within train: 0" in report
    grid = np.asarray(Image.open(out).convert("RGB"))
    assert grid.shape[0] > 400 and grid.shape[1] > 150  # Ten rows of two cells.
    # Every example's exact colours cannot survive resampling, but the grid is not blank.
    assert grid.std() > 20


def test_text_report_and_table(tmp_path):
    intents = [f"intent_{k:03d}" for k in range(150)]
    data = {"train": [[f"query {k}", intents[k]] for k in range(150)],
            "val": [["query 7", intents[7]]], "test": [["another query", intents[3]]],
            "oos_train": [["out", "oos"]], "oos_val": [["out", "oos"]], "oos_test": [["far out", "oos"]]}
    (tmp_path / "data_full.json").write_text(__import__("json").dumps(data))
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "query", "out"]))
    prepare("clinc_intent", tmp_path, tmp_path / "data", check=False, vocab_file=tmp_path / "vocab.txt")
    out = tmp_path / "table.tsv"
    report = overview.overview("clinc_intent", str(tmp_path / "data"), str(out), rows=2)
    assert "[train] 150 examples" in report and "150 classes, min 1, max 1 per class" in report
    assert "exact duplicates train/validation: 1 (train#7==validation#0" in report
    assert "exact duplicates train/test: 0" in report
    # "query 7" -> [CLS] query [UNK] [SEP]: 4 tokens.
    table = out.read_text().splitlines()
    assert table[0] == "split\tlabel\tintent\ttokens\ttext"
    assert "validation\t7\tintent_007\t4\tquery 7" in table
    assert "test_oos\t150\toos\t4\tfar out" in table


def test_tabular_summary_by_hand(tmp_path):
    folder = tmp_path / "uci" / "yacht"
    folder.mkdir(parents=True)
    data = np.array([[1.0, 10.0, 5.0], [3.0, 20.0, 7.0], [5.0, 30.0, 9.0], [3.0, 20.0, 1.0]])
    np.savetxt(folder / "data.txt", data)
    for name, value in {"index_features": "0\n1", "index_target": "2", "n_splits": "1",
                        "n_hidden": "50", "n_epochs": "40", "tau_values": "0.1",
                        "dropout_rates": "0.05", "index_train_0": "0\n1\n2", "index_test_0": "3"}.items():
        (folder / f"{name}.txt").write_text(value + "\n")
    report = overview.overview("uci_yacht", str(tmp_path))
    assert "uci_yacht: 4 rows, 2 features, 1 standard splits; split 0: train 3, test 1" in report
    assert "whose features also occur in train: 1" in report  # Row 3 repeats row 1's features.
    x0 = next(line for line in report.splitlines() if line.startswith("x0 "))
    assert x0.split() == ["x0", "1", "5", "3", f"{np.std([1, 3, 5, 3]):.4g}"]
    target = next(line for line in report.splitlines() if line.startswith("target"))
    assert target.split()[1:4] == ["1", "9", "5.5"]


def test_missing_data_names_the_prepare_command(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"prepare cifar10 --source PATH --data_dir"):
        overview.overview("cifar10", str(tmp_path))
    result = subprocess.run([sys.executable, "-m", "uncertainty_baselines.datasets.overview",
                             "mnist", "--data_dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "overview mnist: error: mnist is not prepared" in result.stderr
