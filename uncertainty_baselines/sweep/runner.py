"""Running a sweep locally, one run after another, or printing its commands for a cluster.

The sweep folder (`--out`):

    sweep.json          the definition's runs: id, flags, command (rewritten on every start)
    runs/<id>/          each run's --output_dir (run.json once it has finished)
    logs/<id>.log       each run's console output; logs/<id>.failed holds a failed run's exit code
    results.csv, results.jsonl, sweep.html    written by `collect` (collect.py)

A run is finished when its folder holds run.json; finished runs are never run again, so a
sweep stopped at any point (or with failed runs) resumes by running the same command. An
interrupted run is rerun with the same flags in the same folder, which resumes it (image
and text baselines) or starts it afresh (UCI).
"""
from __future__ import annotations

import dataclasses
import datetime
import fcntl
import json
import os
import pathlib
import shlex
import subprocess
import sys
import time
from typing import Any, Callable, Mapping, Sequence

from uncertainty_baselines.runs.run_record import RUN_RECORD, write_json_atomic
from uncertainty_baselines.sweep.definition import REPO, Sweep, arguments, check_flags, run_id
from uncertainty_baselines.sweep.space import SweepError

SWEEP_FILE = "sweep.json"


@dataclasses.dataclass(frozen=True)
class PlannedRun:
    """One run of a sweep: its index, id (folder name), flags and folder."""
    index: int
    id: str
    flags: dict[str, Any]
    output_dir: pathlib.Path

    def command(self, script: str, python: str = sys.executable, lock: str | None = None) -> list[str]:
        """The run's command line (with `flock LOCK` in front when a lock is given)."""
        return [*(["flock", lock] if lock else []), python, script, *arguments(self.flags),
                f"--output_dir={self.output_dir}"]

    @property
    def finished(self) -> bool:
        return (self.output_dir / RUN_RECORD).is_file()


def plan(sweep: Sweep, out: str | os.PathLike, overrides: Mapping[str, Any] | None = None) -> list[PlannedRun]:
    """The runs of `sweep` under the folder `out` (nothing written)."""
    out = pathlib.Path(out).resolve()
    runs = sweep.runs(overrides)
    planned = [PlannedRun(i, run_id(flags), flags, out / "runs" / run_id(flags)) for i, flags in enumerate(runs)]
    ids = [r.id for r in planned]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        dupes = [r.flags for r in planned if r.id == repeated[0]][:1]
        raise SweepError(f"the sweep repeats a run ({dupes[0]}): every point must differ")
    return planned


def status(run: PlannedRun, out: pathlib.Path) -> str:
    """'finished', 'failed' (the last attempt exited non-zero), 'started' (a folder without
    run.json: interrupted, or running now) or 'pending'."""
    if run.finished:
        return "finished"
    if (out / "logs" / f"{run.id}.failed").is_file():
        return "failed"
    return "started" if run.output_dir.exists() else "pending"


def write_plan(sweep: Sweep, definition: str | os.PathLike, out: pathlib.Path, runs: Sequence[PlannedRun],
               python: str = sys.executable) -> None:
    """sweep.json: the definition and every run's id, flags and command."""
    write_json_atomic(out / SWEEP_FILE, {
        "definition": str(definition), "script": sweep.script, "description": sweep.description,
        "space": sweep.space.description, "metrics": list(sweep.metrics), "swept": sweep.space.names,
        "runs": [{"index": r.index, "id": r.id, "flags": r.flags,
                  "command": shlex.join(r.command(sweep.script, python))} for r in runs]})


def run_sweep(sweep: Sweep, definition: str | os.PathLike, out: str | os.PathLike, *,
              overrides: Mapping[str, Any] | None = None, lock: str | None = None, hold_lock: bool = False,
              only: Sequence[int] | None = None, check: bool = True, python: str = sys.executable,
              log: Callable[[str], None] = print) -> dict[str, list[str]]:
    """Run every unfinished run of `sweep` (or those of indices `only`), one after another.

    Each run executes `python SCRIPT --flags --output_dir=OUT/runs/<id>` from the
    repository root, its output in OUT/logs/<id>.log; with `lock`, under `flock LOCK`
    (taken for each run), or, with `hold_lock`, the lock is taken once for the whole sweep
    so runs of other queues cannot interleave. A failed run is logged and the sweep goes on.
    Returns {"finished": ids run now, "skipped": already finished, "failed": ids}.
    """
    out = pathlib.Path(out).resolve()
    runs = plan(sweep, out, overrides)
    if only is not None:
        bad = [i for i in only if not 0 <= i < len(runs)]
        if bad:
            raise SweepError(f"run index {bad[0]} out of range: the sweep has runs 0..{len(runs) - 1}")
        runs_to_do = [runs[i] for i in only]
    else:
        runs_to_do = runs
    if check:
        check_flags(sweep, [r.flags for r in runs], python)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    write_plan(sweep, definition, out, runs, python)
    result: dict[str, list[str]] = {"finished": [], "skipped": [], "failed": []}
    lock_file = _acquire(lock, log) if (lock and hold_lock) else None
    try:
        for run in runs_to_do:
            if run.finished:
                result["skipped"].append(run.id)
                continue
            command = run.command(sweep.script, python, None if hold_lock else lock)
            log(f"[{_now()}] run {run.index + 1}/{len(runs)} {run.id}: {_point(run.flags, sweep.space.names)}")
            failed = out / "logs" / f"{run.id}.failed"
            failed.unlink(missing_ok=True)
            start = time.time()
            with open(out / "logs" / f"{run.id}.log", "a") as log_file:
                log_file.write(f"# {_now()} {shlex.join(command)}\n")
                log_file.flush()
                code = subprocess.run(command, cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT,
                                      env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}).returncode
            if code == 0 and run.finished:
                result["finished"].append(run.id)
                log(f"[{_now()}]   finished in {time.time() - start:.0f} s")
            else:
                failed.write_text(f"{code}\n")
                result["failed"].append(run.id)
                log(f"[{_now()}]   FAILED (exit {code}): see {out / 'logs' / f'{run.id}.log'}")
    finally:
        if lock_file is not None:
            lock_file.close()
    return result


def commands(sweep: Sweep, out: str | os.PathLike, *, overrides: Mapping[str, Any] | None = None,
             lock: str | None = None, pending_only: bool = True, python: str = sys.executable) -> list[str]:
    """One shell command per run (unfinished ones by default), for a cluster array job:
    task i runs line i. Each starts in the repository root."""
    out = pathlib.Path(out).resolve()
    runs = plan(sweep, out, overrides)
    return [f"cd {shlex.quote(str(REPO))} && {shlex.join(r.command(sweep.script, python, lock))}"
            for r in runs if not (pending_only and r.finished)]


def _acquire(lock: str, log: Callable[[str], None]):
    """An exclusive flock on `lock` (the same lock `flock LOCK cmd` takes), waiting for it."""
    handle = open(lock, "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log(f"[{_now()}] waiting for the lock {lock}")
        fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def _point(flags: Mapping[str, Any], names: Sequence[str]) -> str:
    return " ".join(f"{n}={flags[n]}" for n in names if n in flags)


def _now() -> str:
    return datetime.datetime.now().strftime("%H:%M:%S")


def read_plan(out: str | os.PathLike) -> dict[str, Any]:
    """sweep.json of a sweep folder; SweepError when it is not one."""
    path = pathlib.Path(out) / SWEEP_FILE
    if not path.is_file():
        raise SweepError(f"{out} is not a sweep folder (no {SWEEP_FILE}): run the sweep first")
    return json.loads(path.read_text())
