"""A sweep definition: which baseline script, which flags vary (a `Space`), which are fixed.

A definition is a small Python file defining `SWEEP` (see baselines/*/sweeps/):

    from uncertainty_baselines.sweep import Sweep, grid
    SWEEP = Sweep(script="baselines/uci/deterministic.py",
                  space=grid(dataset=["uci_yacht", "uci_boston_housing"], learning_rate=[1e-3, 1e-2]),
                  fixed={"split": "all", "validation_percent": 0.2},
                  metrics=("validation/log_likelihood", "validation/rmse"))

Every run gets the fixed flags, its point's flags and its own --output_dir. Before
anything runs, the flags are checked against the script's own absl flags (in a
subprocess that imports the script without running it): an unknown flag or a value the
flag cannot parse is named, with the closest valid names.
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import os
import pathlib
import runpy
import subprocess
import sys
from typing import Any, Mapping, Sequence

from uncertainty_baselines.sweep.space import Space, SweepError

REPO = pathlib.Path(__file__).resolve().parents[2]
RUNNER_FLAGS = ("output_dir",)  # set by the runner for each run
# Flags that do not change a run's result (as training.flags.RESULT_NEUTRAL_FLAGS): not in run ids.
ID_NEUTRAL_FLAGS = ("data_dir", "download_data", "log_interval_s", "steps_per_loop", "keep_checkpoints", "tpu")


@dataclasses.dataclass(frozen=True)
class Sweep:
    """`script` (relative to the repository root) run once per point of `space`, with the
    `fixed` flags too; `metrics` are the run.json metrics the results table keeps (all when
    empty), the first one colouring the parallel-coordinates plot."""
    script: str
    space: Space
    fixed: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    metrics: Sequence[str] = ()
    description: str = ""

    def runs(self, overrides: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """The flags of every run: fixed (with `overrides`, e.g. a machine's data_dir), then
        the point's. SweepError for an empty space, a flag both fixed and swept, or a flag
        the runner sets itself."""
        if not isinstance(self.space, Space):
            raise SweepError(f"Sweep.space must be a Space (grid, random_search, halton, ...), got {self.space!r}")
        if len(self.space) == 0:
            raise SweepError("the sweep's space has no points: it makes no runs")
        fixed = {**dict(self.fixed), **dict(overrides or {})}
        both = sorted(set(fixed) & set(self.space.names))
        if both:
            raise SweepError(f"flag(s) {', '.join(both)} are both fixed and swept; drop one")
        reserved = sorted((set(fixed) | set(self.space.names)) & set(RUNNER_FLAGS))
        if reserved:
            raise SweepError(f"--{reserved[0]} is set by the runner for each run (under the sweep's --out folder)")
        return [{**fixed, **point} for point in self.space.points]

    @property
    def script_path(self) -> pathlib.Path:
        path = pathlib.Path(self.script)
        return path if path.is_absolute() else REPO / path


def load(path: str | os.PathLike) -> Sweep:
    """The `SWEEP` of a definition file; SweepError when the file is missing or broken."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise SweepError(f"no sweep definition at {path}")
    try:
        namespace = runpy.run_path(str(path), run_name="ub_sweep_definition")
    except SweepError as e:
        raise SweepError(f"{path}: {e}") from None
    except Exception as e:  # A definition is user code: say where it broke.
        raise SweepError(f"{path} failed to load: {type(e).__name__}: {e}") from None
    sweep = namespace.get("SWEEP")
    if not isinstance(sweep, Sweep):
        raise SweepError(f"{path} must define SWEEP = uncertainty_baselines.sweep.Sweep(...), "
                         f"found {type(sweep).__name__ if sweep is not None else 'nothing'}")
    if not sweep.script_path.is_file():
        raise SweepError(f"{path}: the script {sweep.script} does not exist")
    return sweep


def flag_value(value: Any) -> str:
    """A flag value on the command line: lists comma-joined, booleans true/false."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(flag_value(v) for v in value)
    return str(value)


def arguments(flags: Mapping[str, Any]) -> list[str]:
    """`--name=value` for each flag (sorted by name)."""
    return [f"--{name}={flag_value(value)}" for name, value in sorted(flags.items())]


def run_id(flags: Mapping[str, Any]) -> str:
    """A run's folder name: a hash of its flags (but those that do not change a result, such
    as --data_dir), so adding points keeps the others' folders and another machine's data
    folder finds the same runs."""
    text = json.dumps({k: flag_value(v) for k, v in flags.items() if k not in ID_NEUTRAL_FLAGS}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


# Imports the script without running main, then parses each run's arguments with its flags.
_PROBE = r"""
import json, runpy, sys
from absl import flags
script = sys.argv[1]
sys.argv = [script]
runpy.run_path(script, run_name="ub_sweep_probe")
names = sorted(flags.FLAGS)
errors = []
for i, argv in enumerate(json.load(sys.stdin)):
    known = [a for a in argv if a[2:].split("=", 1)[0] in flags.FLAGS]
    try:
        flags.FLAGS([script, *known, "--output_dir=/nonexistent/probe"], known_only=True)
    except flags.Error as e:
        errors.append([i, str(e)])
    finally:
        flags.FLAGS.unparse_flags()
print(json.dumps({"names": names, "errors": errors}))
"""


def check_flags(sweep: Sweep, runs: Sequence[Mapping[str, Any]], python: str = sys.executable) -> None:
    """SweepError naming every flag `script` does not define (with the closest valid names)
    and every run whose values its flags cannot parse. Imports the script in a subprocess."""
    argvs = [arguments(flags) for flags in runs]
    done = subprocess.run([python, "-c", _PROBE, str(sweep.script_path)], input=json.dumps(argvs),
                          capture_output=True, text=True, cwd=REPO, timeout=600,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if done.returncode != 0:
        raise SweepError(f"could not import {sweep.script} to read its flags:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    valid = set(result["names"])
    unknown = sorted({name for flags in runs for name in flags} - valid)
    problems = []
    for name in unknown:
        close = difflib.get_close_matches(name, valid, n=3)
        hint = f" (did you mean {', '.join('--' + c for c in close)}?)" if close else ""
        problems.append(f"--{name} is not a flag of {sweep.script}{hint}")
    by_message: dict[str, list[int]] = {}
    for index, message in result["errors"]:
        by_message.setdefault(message, []).append(index)
    for message, indices in by_message.items():
        which = f"run {indices[0]}" if len(indices) == 1 else f"runs {', '.join(map(str, indices[:8]))}" + (
            f" and {len(indices) - 8} more" if len(indices) > 8 else "")
        problems.append(f"{message} ({which}: {' '.join(argvs[indices[0]])})")
    if problems:
        raise SweepError("the sweep's flags do not fit the script:\n  " + "\n  ".join(problems))
