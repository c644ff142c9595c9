"""Atomic, verified checkpoints of NumPy arrays, without pickle.

A checkpoint is a folder `ckpt-<step>` holding `.npz` files (one per part: model,
optimizer, ...) and `manifest.json` with the sha256 and size of each file plus a JSON
`state` (epoch, step, ...). It is written into a temporary folder and renamed into place,
so a crash never leaves a half-written latest checkpoint. Loading verifies every hash;
restoring the latest falls back, with a warning, to the newest checkpoint that verifies.
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
import shutil
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np
from absl import logging

SUBDIR = "checkpoints"  # Where a run directory keeps its checkpoints.
MANIFEST = "manifest.json"
FORMAT = "ub-checkpoint-v1"
_NAME = re.compile(r"^ckpt-(\d{9})$")


class CorruptCheckpointError(ValueError):
    """A checkpoint whose manifest or files do not match (tampered, truncated, missing)."""


class Checkpoint(NamedTuple):
    path: pathlib.Path
    step: int
    parts: dict[str, dict[str, np.ndarray]]
    state: dict[str, Any]


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save(directory: str | os.PathLike, step: int, parts: Mapping[str, Mapping[str, np.ndarray]],
         state: Mapping[str, Any]) -> pathlib.Path:
    """Write checkpoint `ckpt-<step>` under `directory` atomically and return its path.

    `parts` maps a part name (e.g. "model") to its named arrays, stored as `<part>.npz`.
    An existing checkpoint of the same step is replaced.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"ckpt-{step:09d}"
    tmp = directory / f".tmp-ckpt-{step:09d}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    files = {}
    for part, arrays in parts.items():
        name = f"{part}.npz"
        with open(tmp / name, "wb") as f:
            np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})
            f.flush()
            os.fsync(f.fileno())
        files[name] = {"sha256": sha256_file(tmp / name), "bytes": (tmp / name).stat().st_size}
    manifest = {"format": FORMAT, "step": step, "files": files, "state": dict(state)}
    with open(tmp / MANIFEST, "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(directory)
    return final


def load(path: str | os.PathLike) -> Checkpoint:
    """Read and verify one checkpoint folder; CorruptCheckpointError says what is wrong."""
    path = pathlib.Path(path)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        raise CorruptCheckpointError(f"checkpoint {path}: unreadable {MANIFEST} ({e})") from e
    if manifest.get("format") != FORMAT:
        raise CorruptCheckpointError(f"checkpoint {path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    parts = {}
    for name, meta in manifest["files"].items():
        file = path / name
        if not file.is_file():
            raise CorruptCheckpointError(f"checkpoint {path}: {name} is missing")
        actual = sha256_file(file)
        if actual != meta["sha256"]:
            raise CorruptCheckpointError(
                f"checkpoint {path}: {name} has sha256 {actual}, the manifest says {meta['sha256']}")
        with np.load(file, allow_pickle=False) as npz:
            parts[name.removesuffix(".npz")] = {k: npz[k] for k in npz.files}
    return Checkpoint(path, int(manifest["step"]), parts, manifest["state"])


def list_checkpoints(directory: str | os.PathLike) -> list[pathlib.Path]:
    """Checkpoint folders under `directory`, oldest (lowest step) first."""
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_dir() and _NAME.match(p.name))


def latest_path(directory: str | os.PathLike) -> pathlib.Path:
    """The newest checkpoint folder under `directory` (not verified); FileNotFoundError when
    there is none."""
    found = list_checkpoints(directory)
    if not found:
        raise FileNotFoundError(f"no checkpoint under {directory}")
    return found[-1]


def restore_latest(directory: str | os.PathLike) -> Checkpoint | None:
    """The newest checkpoint that verifies, or None when there is none.

    A checkpoint that fails verification is renamed `<name>.corrupt` (kept for inspection,
    never chosen again) with a warning, and the previous one is tried.
    """
    for path in reversed(list_checkpoints(directory)):
        try:
            return load(path)
        except CorruptCheckpointError as e:
            quarantine = path.with_name(path.name + ".corrupt")
            logging.warning("%s; falling back to the previous checkpoint (moved to %s)", e, quarantine.name)
            if quarantine.exists():
                shutil.rmtree(quarantine)
            os.replace(path, quarantine)
    return None


def keep_last(directory: str | os.PathLike, keep: int) -> list[pathlib.Path]:
    """Delete all but the newest `keep` checkpoints (and this process's temporary folders).

    Other processes' temporary folders are left alone: one may be a live writer's
    checkpoint in progress. Those of dead writers are removed by `runs.lifecycle` while it
    holds the run's lock. Returns the deleted paths.
    """
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    doomed = list_checkpoints(directory)[:-keep]
    doomed += [p for p in pathlib.Path(directory).glob(f".tmp-ckpt-*-{os.getpid()}") if p.is_dir()]
    for path in doomed:
        shutil.rmtree(path)
    return doomed


def variables_to_arrays(variables: Sequence[Any]) -> dict[str, np.ndarray]:
    """Named arrays for an ordered list of Keras/TF variables: '<index>:<path>' -> value."""
    return {_key(i, v): np.asarray(v.numpy() if hasattr(v, "numpy") else v) for i, v in enumerate(variables)}


def assign_arrays(variables: Sequence[Any], arrays: Mapping[str, np.ndarray], what: str) -> None:
    """Assign arrays saved by `variables_to_arrays` back, matching by position.

    Positions, count and shapes must agree, and are all checked before the first
    assignment, so a mismatch leaves the model untouched. Paths are informational only:
    Keras numbers auto-named layers per process (`conv2d_7`), so a rebuilt model's paths
    may differ.
    """
    if len(arrays) != len(variables):
        raise ValueError(f"{what}: the checkpoint holds {len(arrays)} variables, the model has {len(variables)}")
    for i, ((key, value), var) in enumerate(zip(arrays.items(), variables)):
        if not key.startswith(f"{i:05d}:"):
            raise ValueError(f"{what}: checkpoint entry {key!r} is not at position {i}")
        if tuple(value.shape) != tuple(var.shape):
            raise ValueError(f"{what}: {key} has shape {value.shape} in the checkpoint, "
                             f"{tuple(var.shape)} in the model ({_key(i, var)})")
    for value, var in zip(arrays.values(), variables):
        var.assign(value)


def _key(index: int, variable: Any) -> str:
    return f"{index:05d}:{getattr(variable, 'path', None) or variable.name}"


def _fsync_dir(directory: pathlib.Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
