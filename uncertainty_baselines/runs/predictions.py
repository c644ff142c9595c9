"""Per-example predictions of an evaluation, stored as a verified, non-executable artefact.

A baseline run with `--save_predictions` (or `--eval_only --save_predictions`) writes its
final evaluation into `<output_dir>/predictions/`, one `.npz` per evaluated set plus a
manifest:

    manifest.json                    {"format": "ub-predictions-v1", "step", "num_classes",
                                      "sets": {name: {"file", "kind", "sha256", "bytes",
                                      "num_examples", "arrays": {key: {"dtype", "shape"}},
                                      ["ood_dataset" | "corruption_type", "severity"]}}}
    test.npz                         the clean test set
    ood_<name>.npz                   an OOD set of `ub.datasets.ood` (in-distribution test
                                     examples first, then the OOD ones)
    corrupted_<type>_<severity>.npz  a corrupted test set
    shifted_<name>.npz               a shifted test set (ImageNet-A, -R, -V2)

Each `.npz` holds numeric arrays only, read with `np.load(allow_pickle=False)`:
`logits` float32 [N, K], or [N, M, K] with a member axis (MC samples, heads, ensemble
members: softmax each member, then average, to get the run's predictive); `id` int64 [N]
(the example's index in its split: in `ub.datasets.ood` sets the in-distribution ones
first); `labels` int32 [N] (-1 for OOD examples); OOD sets also `is_in_distribution`
int32 [N] (1 in-distribution, 0 OOD). Padded rows are never stored. Other writers (the
post-hoc experiments) may add arrays, e.g. `features` [N, D]. Reading checks every sha256
before any array is parsed. The folder is assembled under a temporary name and renamed
into place, so a crash never leaves a half-written set of predictions.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import shutil
from typing import Any, Mapping

import numpy as np

from uncertainty_baselines.runs.checkpoint import sha256_file

SUBDIR = "predictions"
MANIFEST = "manifest.json"
FORMAT = "ub-predictions-v1"
KINDS = ("test", "ood", "corrupted", "shifted")
# What a baseline keeps of an evaluation's outputs (probabilities follow from the logits).
SAVED_KEYS = ("logits", "id", "labels", "is_in_distribution")
_STEM = re.compile(r"^[A-Za-z0-9_.-]+$")


class PredictionsError(ValueError):
    """A predictions folder that is missing, incomplete or altered; the message names the file."""


@dataclasses.dataclass(frozen=True)
class PredictionSet:
    """One evaluated set: its arrays and its manifest entry (kind, sizes, set facts)."""
    name: str
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]


def set_name(kind: str, key: str | tuple[str, int] | None = None) -> str:
    """The file stem of an evaluated set: `test`, `ood_<name>`, `corrupted_<type>_<severity>`,
    `shifted_<name>` (another test set of the same classes, e.g. ImageNet-V2)."""
    if kind == "test":
        return "test"
    if kind == "ood":
        return f"ood_{key}"
    if kind == "corrupted":
        corruption, severity = key
        return f"corrupted_{corruption}_{int(severity)}"
    if kind == "shifted":
        return f"shifted_{key}"
    raise ValueError(f"unknown evaluated-set kind {kind!r}; valid: {KINDS}")


def with_in_distribution(clean: Mapping[str, np.ndarray], ood: Mapping[str, np.ndarray], name: str
                         ) -> dict[str, np.ndarray]:
    """The predictions on OOD set `name` in the order of `ub.datasets.ood`: the clean test
    set's (`is_in_distribution` 1) followed by its OOD examples' (0; ids after the clean ones),
    so the in-distribution half of every OOD set costs no second pass over the test set.

    Holds the arrays of `ood`. Raises ValueError when `ood` holds in-distribution examples
    (they would count twice) or an array `clean` lacks.
    """
    if np.any(ood.get("is_in_distribution", 0) != 0):
        raise ValueError(f"the OOD set {name} holds in-distribution examples: load only its OOD "
                         "examples (ub.datasets.ood.get_ood(..., include_in_distribution=False))")
    keys = set(ood) - {"is_in_distribution"}
    if keys - set(clean):
        raise ValueError(f"the OOD set {name} has arrays {sorted(keys - set(clean))} the test set lacks")
    n, n_ood = len(clean["labels"]), len(ood["labels"])
    out = {k: np.concatenate([clean[k], ood[k] + n if k == "id" else ood[k]]) for k in keys}
    out["is_in_distribution"] = np.r_[np.ones(n, np.int32), np.zeros(n_ood, np.int32)]
    return out


class PredictionsWriter:
    """Collects evaluated sets into a temporary folder beside `directory`; `commit` puts them
    in place (replacing an earlier folder), `abort` drops them."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = pathlib.Path(directory)
        self._tmp = self.directory.with_name(f".{self.directory.name}.tmp-{os.getpid()}")
        if self._tmp.exists():
            shutil.rmtree(self._tmp)
        self._tmp.mkdir(parents=True)
        self._sets: dict[str, dict[str, Any]] = {}

    def add(self, kind: str, key: str | tuple[str, int] | None, outputs: Mapping[str, Any],
            keys: tuple[str, ...] | None = SAVED_KEYS) -> str:
        """Store one evaluated set (`outputs` of `training.loop.predict`); `keys` selects the
        arrays kept (None: all). Returns the set's name."""
        meta: dict[str, Any] = {}
        if kind == "ood":
            meta["ood_dataset"] = key
        elif kind == "corrupted":
            meta["corruption_type"], meta["severity"] = key[0], int(key[1])
        return self.add_set(set_name(kind, key), outputs, keys, kind=kind, **meta)

    def add_set(self, name: str, outputs: Mapping[str, Any], keys: tuple[str, ...] | None = None,
                **meta: Any) -> str:
        """Store the arrays `keys` (None: all) of `outputs` as set `name` (a file stem) with
        JSON manifest facts `meta` (e.g. kind); `logits`, `id` and `labels` are required."""
        if not _STEM.match(name):
            raise ValueError(f"set name {name!r} must be a file stem (letters, digits, '_', '-', '.')")
        if name in self._sets:
            raise ValueError(f"predictions of {name} were already added")
        arrays = {k: np.ascontiguousarray(v) for k, v in outputs.items() if keys is None or k in keys}
        for required in ("logits", "id", "labels"):
            if required not in arrays:
                raise ValueError(f"predictions of {name} lack {required!r} (got {sorted(outputs)})")
        n = len(arrays["id"])
        for k, v in arrays.items():
            if v.dtype.kind not in "biuf":
                raise ValueError(f"predictions of {name}: {k} has dtype {v.dtype}; only numeric arrays are stored")
            if len(v) != n:
                raise ValueError(f"predictions of {name}: {k} has {len(v)} rows, id has {n}")
        file = self._tmp / f"{name}.npz"
        with open(file, "wb") as f:
            np.savez(f, **arrays)
        self._sets[name] = {**meta, "file": file.name, "num_examples": n, "sha256": sha256_file(file),
                            "bytes": file.stat().st_size,
                            "arrays": {k: {"dtype": str(v.dtype), "shape": list(v.shape)} for k, v in arrays.items()}}
        return name

    def commit(self, **facts: Any) -> pathlib.Path:
        """Write the manifest (with JSON `facts`, e.g. step, num_classes) and move the folder
        into place atomically; returns its path."""
        if {"format", "sets"} & set(facts):
            raise ValueError("'format' and 'sets' are the manifest's own keys, not facts")
        manifest = {"format": FORMAT, **facts, "sets": self._sets}
        with open(self._tmp / MANIFEST, "w") as f:
            json.dump(manifest, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        old = self.directory.with_name(f".{self.directory.name}.old-{os.getpid()}")
        if self.directory.exists():
            os.replace(self.directory, old)
        os.replace(self._tmp, self.directory)
        shutil.rmtree(old, ignore_errors=True)
        return self.directory

    def abort(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)


def read_manifest(directory: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a predictions folder (not yet verified against the files)."""
    path = pathlib.Path(directory) / MANIFEST
    if not path.is_file():
        raise PredictionsError(f"no {path}: write predictions with --save_predictions (or "
                               "--eval_only --save_predictions on a finished run)")
    try:
        manifest = json.loads(path.read_text())
        sets = manifest["sets"]
    except (ValueError, KeyError, TypeError) as e:
        raise PredictionsError(f"{path} is unreadable ({e})") from None
    if manifest.get("format") != FORMAT:
        raise PredictionsError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    if not isinstance(sets, dict):
        raise PredictionsError(f"{path}: 'sets' must map set names to entries")
    return manifest


def read_set(directory: str | os.PathLike, name: str, manifest: Mapping[str, Any] | None = None) -> PredictionSet:
    """One verified set (sha256 checked before parsing; no pickle)."""
    directory = pathlib.Path(directory)
    manifest = manifest or read_manifest(directory)
    if name not in manifest["sets"]:
        raise PredictionsError(f"{directory}: no set {name!r}; it holds {sorted(manifest['sets'])}")
    meta = dict(manifest["sets"][name])
    file = directory / meta["file"]
    if pathlib.Path(meta["file"]).name != meta["file"] or not file.is_file():
        raise PredictionsError(f"{directory}: {meta['file']} is missing")
    actual = sha256_file(file)
    if actual != meta["sha256"]:
        raise PredictionsError(f"{file} has sha256 {actual}, {MANIFEST} says {meta['sha256']}")
    with np.load(file, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return PredictionSet(name, arrays, meta)


def read_predictions(directory: str | os.PathLike) -> dict[str, PredictionSet]:
    """Every set of a predictions folder, verified: {name: PredictionSet}."""
    manifest = read_manifest(directory)
    return {name: read_set(directory, name, manifest) for name in manifest["sets"]}
