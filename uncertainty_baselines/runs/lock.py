"""An exclusive, process-lifetime lock on a folder, so two processes never write one run.

The lock is `fcntl.flock` on a file inside the folder: the operating system releases it
when the holding process exits for any reason (kill -9 included), so a crash never
leaves a stale lock behind. The file also records who holds it (pid, host, command,
start time), so a refused second writer can be told whom it collided with.
"""
from __future__ import annotations

import datetime
import fcntl
import json
import os
import pathlib
import socket
import sys

LOCK_FILE = ".lock"


class FolderLockedError(RuntimeError):
    """Another live process holds the folder's lock."""


class FolderLock:
    """Holds the exclusive lock of `folder` from `acquire()` until `release()` or process exit."""

    def __init__(self, folder: str | os.PathLike, name: str = LOCK_FILE):
        self.path = pathlib.Path(folder) / name
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "FolderLock":
        """Take the lock without waiting; FolderLockedError names the holder if it is taken."""
        if self._fd is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FolderLockedError(
                f"{self.path.parent} is in use by another process ({describe_holder(self.path)}); "
                "wait for it to finish or stop it, or choose another folder") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(holder_info()).encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def is_locked(folder: str | os.PathLike, name: str = LOCK_FILE) -> bool:
    """True when a live process holds the lock of `folder` (probes without keeping it)."""
    path = pathlib.Path(folder) / name
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # Closing drops the probe's shared lock.
    return False


def holder_info() -> dict:
    """Who takes a lock: pid, host, command line and start time."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv),
            "since": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def describe_holder(path: str | os.PathLike) -> str:
    """'pid N on HOST since T: COMMAND' from a lock file, or a plain note if unreadable."""
    try:
        info = json.loads(pathlib.Path(path).read_text())
        return f"pid {info['pid']} on {info['host']} since {info['since']}: {info['command']}"
    except (OSError, ValueError, KeyError):
        return "holder unknown"
