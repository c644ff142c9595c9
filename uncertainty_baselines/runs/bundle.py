"""Release bundles: one self-contained, verifiable artefact per trained model.

A bundle is a flat folder (or a `.tar.gz` of it) of exactly these files:

    weights.npz     the model's arrays, '<index>:<path>' -> array (as in a checkpoint's model.npz)
    model.json      {"name": registry model, "kwargs": {...}}
    run.json        the run record of the run it came from
    README.md       the model card
    MANIFEST.json   {"format", "files": {name: {"sha256", "bytes"}}, "warnings": [...]}

Reading verifies the manifest before anything is parsed: every listed file present with
its hash, no unknown file, archives holding only regular files under one folder. Nothing
in a bundle is executable: JSON, Markdown and an `.npz` read without pickle.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pathlib
import shutil
import tarfile
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

FORMAT = "ub-bundle-v1"
MANIFEST = "MANIFEST.json"
WEIGHTS, SPEC, RECORD, CARD = "weights.npz", "model.json", "run.json", "README.md"
FILES = (WEIGHTS, SPEC, RECORD, CARD)
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")


class BundleError(ValueError):
    """A bundle that is incomplete, altered or not a bundle; the message names the file."""


class Bundle(NamedTuple):
    path: pathlib.Path
    spec: dict[str, Any]
    record: dict[str, Any]
    weights: dict[str, np.ndarray]
    card: str
    warnings: list[str]


def is_bundle(path: str | os.PathLike) -> bool:
    """True for a bundle archive or a folder holding a bundle manifest."""
    path = pathlib.Path(path)
    return path.name.endswith(ARCHIVE_SUFFIXES) or (path / MANIFEST).is_file()


def write(out: str | os.PathLike, *, weights: Mapping[str, np.ndarray], spec: Mapping[str, Any],
          record: Mapping[str, Any], card: str, warnings: Sequence[str] = ()) -> pathlib.Path:
    """Write a bundle to folder `out`, or to archive `out` when it ends in .tar.gz / .tgz.

    The folder is assembled next to `out` and renamed into place, so a crash leaves no
    half-written bundle. An existing `out` is refused (a release is never overwritten).
    """
    out = pathlib.Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists; a release is never overwritten, choose another --out")
    archive = out.name.endswith(ARCHIVE_SUFFIXES)
    top = next((out.name.removesuffix(s) for s in ARCHIVE_SUFFIXES if out.name.endswith(s)), out.name)
    tmp = out.with_name(f".{top}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        with open(tmp / WEIGHTS, "wb") as f:
            np.savez(f, **{k: np.asarray(v) for k, v in weights.items()})
        (tmp / SPEC).write_text(_json(spec))
        (tmp / RECORD).write_text(_json(record))
        (tmp / CARD).write_text(card)
        files = {name: {"sha256": _sha256((tmp / name).read_bytes()), "bytes": (tmp / name).stat().st_size}
                 for name in FILES}
        (tmp / MANIFEST).write_text(_json({"format": FORMAT, "files": files, "warnings": list(warnings)}))
        if archive:
            _write_archive(tmp, top, out)
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def read(path: str | os.PathLike) -> Bundle:
    """Read and verify the bundle folder or archive at `path` (see the module docstring)."""
    path = pathlib.Path(path)
    contents = _archive_files(path) if path.name.endswith(ARCHIVE_SUFFIXES) else _folder_files(path)
    if MANIFEST not in contents:
        raise BundleError(f"bundle {path}: no {MANIFEST}; is it a bundle (python -m uncertainty_baselines.release)?")
    try:
        manifest = json.loads(contents[MANIFEST])
        listed = manifest["files"]
    except (ValueError, KeyError, TypeError) as e:
        raise BundleError(f"bundle {path}: {MANIFEST} is unreadable ({e})") from None
    if manifest.get("format") != FORMAT:
        raise BundleError(f"bundle {path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    if sorted(listed) != sorted(FILES):
        raise BundleError(f"bundle {path}: {MANIFEST} lists {sorted(listed)}, a bundle has {sorted(FILES)}")
    unknown = sorted(set(contents) - set(FILES) - {MANIFEST})
    if unknown:
        raise BundleError(f"bundle {path}: unknown file(s) {unknown}; a bundle holds only {[*FILES, MANIFEST]}")
    for name, meta in listed.items():
        if name not in contents:
            raise BundleError(f"bundle {path}: {name} is missing")
        actual = _sha256(contents[name])
        if actual != meta.get("sha256"):
            raise BundleError(f"bundle {path}: {name} has sha256 {actual}, {MANIFEST} says {meta.get('sha256')}")
    with np.load(io.BytesIO(contents[WEIGHTS]), allow_pickle=False) as npz:
        weights = {k: npz[k] for k in npz.files}
    return Bundle(path, json.loads(contents[SPEC]), json.loads(contents[RECORD]), weights,
                  contents[CARD].decode(), list(manifest.get("warnings", [])))


def _folder_files(path: pathlib.Path) -> dict[str, bytes]:
    if not path.is_dir():
        raise BundleError(f"bundle {path}: not a folder or a {'/'.join(ARCHIVE_SUFFIXES)} archive")
    entries = sorted(path.iterdir())
    odd = [p.name for p in entries if not p.is_file() or p.is_symlink()]
    if odd:
        raise BundleError(f"bundle {path}: {odd} are not regular files; a bundle is a flat folder of files")
    return {p.name: p.read_bytes() for p in entries}


def _archive_files(path: pathlib.Path) -> dict[str, bytes]:
    """The files of a bundle archive, read into memory (nothing is extracted to disk).

    Only regular files directly under one top folder are accepted: links, devices,
    absolute or '..' paths are refused before any content is read."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            members = tar.getmembers()
            tops = {m.name.split("/")[0] for m in members}
            for m in members:
                parts = m.name.split("/")
                if m.isdir() and len(parts) == 1:
                    continue
                if not m.isfile() or len(parts) != 2 or len(tops) != 1 or ".." in parts or m.name.startswith("/"):
                    raise BundleError(f"bundle {path}: archive entry {m.name!r} is not a file of its one folder")
            return {m.name.split("/")[1]: tar.extractfile(m).read() for m in members if m.isfile()}
    except (tarfile.TarError, OSError, EOFError) as e:
        raise BundleError(f"bundle {path}: unreadable archive ({e})") from None


def _write_archive(folder: pathlib.Path, top: str, out: pathlib.Path) -> None:
    """A reproducible .tar.gz: sorted names, zero times and owners, so equal bundles hash equal."""
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
            for name in sorted(p.name for p in folder.iterdir()):
                data = (folder / name).read_bytes()
                info = tarfile.TarInfo(f"{top}/{name}")
                info.size, info.mode, info.mtime = len(data), 0o644, 0
                tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, out)


def _json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
