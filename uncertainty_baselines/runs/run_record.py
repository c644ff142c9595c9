"""The run record `run.json`: what was run, on what, with which data, and what it measured.

Every baseline writes one at the end of a run (and after `--eval_only`), so a result can
be traced back to its flags, code version, package versions, hardware and data, and so
`ub.models.load(run_dir)` can rebuild the model from the recorded name and kwargs.
"""
from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import os
import pathlib
import platform
import shlex
import subprocess
import sys
from typing import Any, Iterable, Mapping

RUN_RECORD = "run.json"
# Packages whose versions decide a result; missing ones are recorded as None.
RECORDED_PACKAGES = (
    "uncertainty_baselines", "tensorflow", "keras", "tensorflow-datasets", "numpy",
    "jax", "torch", "scipy",
)


def package_versions(names: Iterable[str] = RECORDED_PACKAGES) -> dict[str, str | None]:
    """Installed version of each package, None when it is not installed."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def command_line(argv: Iterable[str] | None = None) -> str:
    """The command that started this process, a script inside the repo made relative to
    its root, so a model card can say exactly how to rerun it."""
    argv = list(sys.argv if argv is None else argv)
    if argv:
        script, root = pathlib.Path(argv[0]).resolve(), pathlib.Path(__file__).resolve().parents[2]
        if script.is_file() and script.is_relative_to(root):
            argv[0] = str(script.relative_to(root))
    return shlex.join(["python", *argv])


def git_commit(path: str | os.PathLike = pathlib.Path(__file__).parent) -> dict[str, Any]:
    """The git commit of the code at `path` and whether the tree had local changes."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=path, capture_output=True, text=True,
                                 timeout=10, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def hardware() -> dict[str, Any]:
    """CPU count, processor, memory and accelerators visible to this process."""
    info: dict[str, Any] = {
        "machine": platform.machine(),
        "processor": _cpu_model() or platform.processor(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    try:
        info["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        info["memory_gib"] = None
    return info


def _cpu_model() -> str | None:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def fingerprint(*parts: bytes | str) -> str:
    """sha256 over the given parts (each length-prefixed, so ("ab", "c") != ("a", "bc"))."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else bytes(part)
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def write_run_record(output_dir: str | os.PathLike, *, flags: Mapping[str, Any],
                     metrics: Mapping[str, float], seed: int, data_fingerprint: str | None,
                     wall_time_s: float, model: Mapping[str, Any] | None = None,
                     extra: Mapping[str, Any] | None = None,
                     git: Mapping[str, Any] | None = None) -> pathlib.Path:
    """Write `run.json` atomically into `output_dir` and return its path.

    `model` is `{"name": registry name, "kwargs": {...}}` so `ub.models.load` can rebuild it;
    `extra` holds baseline-specific facts (e.g. parameter count, steps). `git` is
    `git_commit()` taken when the run STARTED (the code that ran; the tree may have moved on
    by the end of a long run); default: now. Values must be JSON-serialisable; NaN or
    infinite metrics are written as null.
    """
    record = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "flags": dict(flags),
        "seed": seed,
        "data_fingerprint": data_fingerprint,
        "wall_time_s": wall_time_s,
        "model": dict(model) if model is not None else None,
        "metrics": {k: _json_number(v) for k, v in metrics.items()},
        "packages": package_versions(),
        "git": dict(git) if git is not None else git_commit(),
        "command": command_line(),
        "hardware": hardware(),
        **(dict(extra) if extra else {}),
    }
    path = pathlib.Path(output_dir) / RUN_RECORD
    write_json_atomic(path, record)
    return path


def read_run_record(output_dir: str | os.PathLike) -> dict[str, Any]:
    """Load `run.json` from `output_dir`; FileNotFoundError naming the path when absent."""
    path = pathlib.Path(output_dir) / RUN_RECORD
    if not path.is_file():
        raise FileNotFoundError(f"no run record {path}: is {output_dir} a finished run directory?")
    try:
        return json.loads(path.read_text())
    except ValueError as e:  # json.JSONDecodeError and bad UTF-8 alike.
        raise ValueError(f"run record {path} is not valid JSON (truncated or edited?): {e}") from None


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON to a temporary file in the same folder, fsync, then rename over `path`."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True, allow_nan=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _json_number(value: Any) -> Any:
    value = float(value)
    return None if value != value or value in (float("inf"), float("-inf")) else value
