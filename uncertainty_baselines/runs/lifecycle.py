"""The life of a run directory, the same for every baseline: start, then finish.

`start_run` is called once everything that can fail on bad input (flags, data) has been
checked, so a failed first start writes nothing. It takes the folder's exclusive lock for
the whole process (a second writer is refused with the holder's pid and command; the OS
frees the lock if the process dies), refuses a folder holding another run unless told to
overwrite, records the flags, removes temporary files that crashed earlier writers left,
and notes the start time and git commit. `Run.finish` writes the run record `run.json`.
"""
from __future__ import annotations

import dataclasses
import pathlib
import shutil
import time
from typing import Any, Iterable, Mapping

from uncertainty_baselines.runs import checkpoint, lock, output_dir, run_record


@dataclasses.dataclass
class Run:
    """A started run: its folder (locked by this process), recorded flags and start facts."""
    output_dir: pathlib.Path
    flags: dict[str, Any]
    resuming: bool
    started_at: float
    git: dict[str, Any]
    folder_lock: lock.FolderLock

    def finish(self, *, metrics: Mapping[str, float], seed: int | None,
               data_fingerprint: str | None, model: Mapping[str, Any] | None = None,
               extra: Mapping[str, Any] | None = None, earlier_wall_time_s: float = 0.0) -> pathlib.Path:
        """Write `run.json` (wall time = this process's + `earlier_wall_time_s` of a resumed
        run) and release the folder lock."""
        path = run_record.write_run_record(
            self.output_dir, flags=self.flags, metrics=metrics, seed=seed,
            data_fingerprint=data_fingerprint, model=model, extra=extra, git=self.git,
            wall_time_s=earlier_wall_time_s + time.time() - self.started_at)
        self.folder_lock.release()
        return path


def start_run(path: str | pathlib.Path, flags: Mapping[str, Any], *, overwrite: bool = False,
              ignore: Iterable[str] = (), fresh: bool = False, started_at: float | None = None,
              defaults: Mapping[str, Any] | None = None) -> Run:
    """Lock `path` and create or resume the run with `flags` there (see the module docstring).

    `ignore` names flags that do not change the result and may differ on a restart;
    `defaults` (flag -> default) stand in for flags added since the run started.
    `fresh` (runs that cannot resume, e.g. the UCI baselines) starts a same-flag rerun from
    scratch: the earlier run's outputs are deleted instead of resumed. `started_at` (a
    time.time(), default now) is when the process began, for the recorded wall time.
    Raises lock.FolderLockedError when another process holds the folder,
    output_dir.OutputDirError when it holds another run and `overwrite` is False.
    """
    started_at, git = started_at or time.time(), run_record.git_commit()
    path = pathlib.Path(path)
    folder_lock = lock.FolderLock(path).acquire()
    try:
        resuming = output_dir.prepare_output_dir(path, flags, overwrite=overwrite, ignore=ignore,
                                                 keep=(lock.LOCK_FILE,), defaults=defaults)
        if resuming and fresh:
            output_dir.clear(path, keep=(lock.LOCK_FILE, output_dir.FLAGS_FILE))
            resuming = False
        remove_stale_temporaries(path)
    except BaseException:
        folder_lock.release()
        raise
    return Run(output_dir=path, flags=dict(flags), resuming=resuming, started_at=started_at,
               git=git, folder_lock=folder_lock)


def remove_stale_temporaries(path: pathlib.Path) -> list[pathlib.Path]:
    """Delete temporary checkpoint folders and JSON files that dead writers left in a run.

    Only safe while holding the folder's lock: then no other process can be writing them.
    """
    stale = [p for p in (path / checkpoint.SUBDIR).glob(".tmp-ckpt-*")]
    stale += [p for p in path.glob(".*.tmp-*")]
    for p in stale:
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()
    return stale
