"""Progress and ETA logging for long loops (training steps, splits, epochs)."""
from __future__ import annotations

import time
from typing import Callable

from absl import logging


def format_duration(seconds: float) -> str:
    """Compact human duration: '45s', '3m07s', '2h05m', '1d03h'."""
    if seconds != seconds or seconds < 0:
        raise ValueError(f"duration must be a non-negative number of seconds, got {seconds}")
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def estimate_remaining(done: int, total: int, elapsed_s: float) -> float | None:
    """Seconds left at the average rate so far, or None before any progress."""
    if done <= 0 or elapsed_s <= 0:
        return None
    return max(total - done, 0) * elapsed_s / done


class Progress:
    """Logs 'step n/N (p%), rate, elapsed, ETA' plus scalars, at most every `every_s` seconds.

    The rate and ETA count only the work done by this process (from `initial`), so a
    resumed run does not claim the restored steps took no time.
    """

    def __init__(self, total: int, *, initial: int = 0, unit: str = "step",
                 every_s: float = 30.0, log_fn: Callable[[str], None] = logging.info,
                 clock: Callable[[], float] = time.monotonic):
        if total < 0 or not 0 <= initial <= total:
            raise ValueError(f"need 0 <= initial <= total, got initial={initial}, total={total}")
        self.total, self.initial, self.unit = total, initial, unit
        self.every_s, self._log, self._clock = every_s, log_fn, clock
        self._start = clock()
        self._last_log: float | None = None

    def update(self, done: int, force: bool = False, **scalars: float) -> str | None:
        """Report `done` units finished; logs and returns the line when due (or forced)."""
        now = self._clock()
        if not force and self._last_log is not None and now - self._last_log < self.every_s:
            return None
        self._last_log = now
        line = self.line(done, now - self._start, scalars)
        self._log(line)
        return line

    def line(self, done: int, elapsed_s: float, scalars: dict[str, float]) -> str:
        """The progress line for `done` units after `elapsed_s` seconds of this process."""
        new = done - self.initial
        pct = 100.0 * done / self.total if self.total else 100.0
        parts = [f"{self.unit} {done}/{self.total} ({pct:.1f}%)"]
        if new > 0 and elapsed_s > 0:
            parts.append(f"{new / elapsed_s:.3g} {self.unit}s/s")
        parts.append(f"elapsed {format_duration(elapsed_s)}")
        remaining = estimate_remaining(new, self.total - self.initial, elapsed_s)
        parts.append("ETA " + ("?" if remaining is None else format_duration(remaining)))
        parts += [f"{k}={v:.4g}" for k, v in scalars.items()]
        return ", ".join(parts)
