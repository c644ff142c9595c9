"""UCI loaders: tiny generated folders (layout, bad input) and the real data (integration)."""
import pathlib

import numpy as np
import pytest

import uncertainty_baselines as ub
from uncertainty_baselines.datasets import uci


def write_fixture(root: pathlib.Path, name: str = "uci_yacht", rows: int = 10,
                  n_splits: int = 2, data: np.ndarray | None = None) -> pathlib.Path:
    """A tiny dataset folder in the papers' layout: 2 features + target, 8/2 splits."""
    folder = root / "uci" / uci.FOLDERS[name]
    folder.mkdir(parents=True)
    if data is None:
        data = np.column_stack([np.arange(rows), np.arange(rows) ** 2, 3 * np.arange(rows) + 1.0])
    np.savetxt(folder / "data.txt", data)
    (folder / "index_features.txt").write_text("0\n1\n")
    (folder / "index_target.txt").write_text("2\n")
    for name_, value in (("n_splits", n_splits), ("n_hidden", 50), ("n_epochs", 40)):
        (folder / f"{name_}.txt").write_text(f"{value}\n")
    (folder / "tau_values.txt").write_text("0.1 0.2\n")
    (folder / "dropout_rates.txt").write_text("0.01\n0.05\n")
    rng = np.random.default_rng(0)
    for k in range(n_splits):
        order = rng.permutation(rows)
        np.savetxt(folder / f"index_train_{k}.txt", order[:8], fmt="%d")
        np.savetxt(folder / f"index_test_{k}.txt", order[8:], fmt="%d")
    return folder


def test_standardisation_uses_the_training_part_only(tmp_path):
    folder = write_fixture(tmp_path)
    split = uci.load_split("uci_yacht", 1, tmp_path, validation_percent=0.25)
    train = np.loadtxt(folder / "index_train_1.txt", dtype=int)
    fit_rows, validation_rows = train[:6], train[6:]  # floor(0.25 * 8) = 2 held out
    x = np.column_stack([np.arange(10), np.arange(10) ** 2]).astype(float)
    y = 3 * np.arange(10) + 1.0
    np.testing.assert_allclose(split.x_mean, x[fit_rows].mean(0))
    np.testing.assert_allclose(split.y_std, y[fit_rows].std())
    np.testing.assert_allclose(split.x_validation,
                               (x[validation_rows] - x[fit_rows].mean(0)) / x[fit_rows].std(0),
                               rtol=1e-6)
    test_rows = np.loadtxt(folder / "index_test_1.txt", dtype=int)
    np.testing.assert_allclose(split.y_test * split.y_std + split.y_mean, y[test_rows], rtol=1e-6)
    assert split.x_train.shape == (6, 2) and split.x_train.dtype == np.float32


def test_constant_feature_is_not_divided_by_zero(tmp_path):
    data = np.column_stack([np.ones(10), np.arange(10), np.arange(10.0)])
    write_fixture(tmp_path, data=data)
    split = uci.load_split("uci_yacht", 0, tmp_path)
    assert np.all(split.x_train[:, 0] == 0) and np.all(np.isfinite(split.x_test))


def test_unknown_name_lists_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="uci_boston_housing.*uci_yacht"):
        uci.load_split("uci_bostn", 0, tmp_path)
    with pytest.raises(ValueError, match="valid names"):
        ub.datasets.get("uci_bostn", split="train")


def test_split_index_out_of_range_lists_the_valid_ones(tmp_path):
    write_fixture(tmp_path, n_splits=2)
    with pytest.raises(ValueError, match=r"2 splits, valid indices 0\.\.1"):
        uci.load_split("uci_yacht", 2, tmp_path)


def test_non_finite_value_names_file_and_line(tmp_path):
    data = np.column_stack([np.arange(10.0), np.arange(10.0), np.arange(10.0)])
    data[6, 1] = np.nan
    write_fixture(tmp_path, data=data)
    with pytest.raises(ValueError, match=r"data\.txt, line 7: non-finite"):
        uci.load_split("uci_yacht", 0, tmp_path)


def test_missing_data_and_bad_indices_are_reported(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        uci.load_split("uci_yacht", 0, tmp_path)
    folder = write_fixture(tmp_path)
    (folder / "index_test_0.txt").write_text("3\n99\n")
    with pytest.raises(ValueError, match=r"index_test_0\.txt: indices must be integers in \[0, 10\)"):
        uci.load_split("uci_yacht", 0, tmp_path)


def test_data_dir_is_the_argument_else_ub_data_dir(tmp_path, monkeypatch):
    write_fixture(tmp_path / "env")
    write_fixture(tmp_path / "arg")
    monkeypatch.setenv("UB_DATA_DIR", str(tmp_path / "env"))
    assert uci.dataset_dir("uci_yacht") == tmp_path / "env" / "uci" / "yacht"
    assert uci.dataset_dir("uci_yacht", tmp_path / "arg") == tmp_path / "arg" / "uci" / "yacht"
    assert len(uci.load_splits("uci_yacht")) == 2
    monkeypatch.setenv("UB_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match=r"nowhere/uci/yacht/data\.txt \(from UB_DATA_DIR\) "
                                         "does not exist"):
        uci.read_settings("uci_yacht")
    monkeypatch.delenv("UB_DATA_DIR")
    with pytest.raises(ValueError, match=r"No data folder.*pass data_dir \(--data_dir.*uci/yacht"
                                         ".*or set UB_DATA_DIR"):
        uci.load_splits("uci_yacht")


def test_fingerprint_covers_the_data_and_the_splits_used(tmp_path):
    folder = write_fixture(tmp_path)
    first = uci.fingerprint("uci_yacht", tmp_path, [0])
    assert uci.fingerprint("uci_yacht", tmp_path, [1]) != first
    (folder / "index_test_0.txt").write_text((folder / "index_test_0.txt").read_text() + "5\n")
    assert uci.fingerprint("uci_yacht", tmp_path, [0]) != first


def test_prepare_validates_then_copies(tmp_path):
    write_fixture(tmp_path / "source")
    target = uci.prepare("uci_yacht", tmp_path / "source", tmp_path / "data")
    assert target == tmp_path / "data" / "uci" / "yacht"
    np.testing.assert_array_equal(uci.load_split("uci_yacht", 0, tmp_path / "data").x_test,
                                  uci.load_split("uci_yacht", 0, tmp_path / "source").x_test)
    (tmp_path / "source" / "uci" / "yacht" / "index_train_1.txt").write_text("0\nx\n")
    with pytest.raises(ValueError, match="index_train_1"):
        uci.prepare("uci_yacht", tmp_path / "source", tmp_path / "other")
    assert not (tmp_path / "other" / "uci" / "yacht").exists()  # nothing written


def test_dataset_pipeline_serves_the_split(tmp_path):
    write_fixture(tmp_path)
    arrays = uci.load_split("uci_yacht", 1, tmp_path, validation_percent=0.25)
    for split, x in (("train", arrays.x_train), ("validation", arrays.x_validation),
                     ("test", arrays.x_test)):
        ds = ub.datasets.get("uci_yacht", split=split, split_index=1, data_dir=str(tmp_path),
                             validation_percent=0.25, seed=0, is_training=False)
        batch = next(iter(ds.load(batch_size=16)))
        assert ds.num_examples == len(x) and ds.num_classes == 0
        np.testing.assert_allclose(batch["features"].numpy()[:len(x)], x)
        assert batch["mask"].numpy().sum() == len(x)  # padded to 16, nothing dropped
    with pytest.raises(ub.datasets.DataNotFoundError, match="prepare"):
        ub.datasets.get("uci_concrete", split="test", data_dir=str(tmp_path))


@pytest.mark.integration
def test_real_data_all_nine_sets(shared_data):
    expected = {"uci_boston_housing": (20, 455, 51, 13), "uci_protein": (5, 41157, 4573, 9),
                "uci_naval": (20, 10741, 1193, 16), "uci_yacht": (20, 277, 31, 6)}
    for name in uci.NAMES:
        settings = uci.read_settings(name, shared_data)
        split = uci.load_split(name, settings.n_splits - 1, shared_data)
        assert settings.n_hidden == (100 if name == "uci_protein" else 50)
        if name in expected:
            assert (settings.n_splits, len(split.y_train), len(split.y_test),
                    split.x_train.shape[1]) == expected[name]
        np.testing.assert_allclose(split.y_train.mean(), 0, atol=1e-5)
        np.testing.assert_allclose(split.y_train.std(), 1, rtol=1e-4)
