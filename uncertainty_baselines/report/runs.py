"""Reading run directories for a report: run.json, flags.json, metrics.jsonl, curves.jsonl.

Framework-free (standard library only). Every problem with the given folders is found
before anything is drawn, and all of them are reported at once (`ReportError`).
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from typing import Any, Iterable, Mapping, Sequence

from uncertainty_baselines.runs import curves as run_curves
from uncertainty_baselines.runs import run_record, summaries
from uncertainty_baselines.runs.output_dir import FLAGS_FILE

# What makes a folder a run: any of these files (a release bundle holds run.json).
RUN_FILES = (run_record.RUN_RECORD, FLAGS_FILE, summaries.METRICS_FILE)
# The metrics a regression (UCI) run reports, in table order, when it has no classification headline.
REGRESSION_HEADLINE = ("log_likelihood", "rmse", "crps", "interval_coverage_95", "interval_width_95")


class ReportError(ValueError):
    """Folders a report cannot be made of; the message names each one and why."""


@dataclasses.dataclass
class RunData:
    """Everything a report shows of one run, as recorded in its folder."""
    path: pathlib.Path
    name: str
    record: dict[str, Any] | None     # run.json; None while the run is unfinished
    flags: dict[str, Any]
    evaluations: list[dict[str, Any]]  # metrics.jsonl, one line per evaluation (or UCI split)
    curves: list[dict[str, Any]]       # curves.jsonl, one line per evaluation (absent in older runs)
    data_group: str = "A"             # runs with the same letter were evaluated on the same data

    @property
    def finished(self) -> bool:
        return self.record is not None

    @property
    def metrics(self) -> dict[str, Any]:
        """The final metrics: run.json's, else (unfinished) the last evaluation's."""
        if self.record is not None:
            return dict(self.record.get("metrics") or {})
        last = self.evaluations[-1] if self.evaluations else {}
        return {k: v for k, v in last.items() if "/" in k}

    @property
    def dataset(self) -> str | None:
        return self.flags.get("dataset")

    @property
    def data_fingerprint(self) -> str | None:
        return (self.record or {}).get("data_fingerprint")

    @property
    def method(self) -> str:
        return str((self.record or {}).get("method") or "")

    @property
    def command(self) -> str | None:
        """The recorded command line (runs before commit b2a682c did not record it)."""
        return (self.record or {}).get("command")

    @property
    def commit(self) -> str:
        git = (self.record or {}).get("git") or {}
        if not git.get("commit"):
            return "unknown"
        return git["commit"][:10] + (" (uncommitted changes)" if git.get("dirty") else "")

    @property
    def is_regression(self) -> bool:
        """A regression run (UCI): no classification metrics to draw as reliability or ROC."""
        metrics = self.metrics
        return not any(k.endswith(("/accuracy", "/ece")) for k in metrics) and any(
            k.endswith(f"/{m}") for k in metrics for m in REGRESSION_HEADLINE)

    @property
    def last_curves(self) -> dict[str, Any] | None:
        """The curves of the final evaluation: the last curves.jsonl line, if recorded."""
        return self.curves[-1] if self.curves else None

    @property
    def corrupted_curves(self) -> dict[str, Any] | None:
        """The curves of the last evaluation that covered corrupted sets (they may be
        evaluated only every few epochs)."""
        for record in reversed(self.curves):
            if any(k.startswith("test/") for k in record.get("reliability", {})):
                return record
        return None


def load_run(path: str | os.PathLike) -> RunData:
    """One run folder; ReportError naming the folder when it is not a run or has no evaluation."""
    problems, run = _load(pathlib.Path(path))
    if problems:
        raise ReportError("\n".join(problems))
    return run


def load_runs(paths: Sequence[str | os.PathLike]) -> list[RunData]:
    """The runs of `paths`, with unique display names and data groups (see `assign_data_groups`).

    ReportError listing every folder that is missing, not a run, unreadable or without any
    evaluation yet, and any folder given twice.
    """
    if not paths:
        raise ReportError("no run directories given")
    problems, runs, seen = [], [], {}
    for path in paths:
        path = pathlib.Path(path)
        key = path.resolve()
        if key in seen:
            problems.append(f"{path}: given twice (also as {seen[key]})")
            continue
        seen[key] = path
        errors, run = _load(path)
        problems += errors
        if run is not None:
            runs.append(run)
    if problems:
        raise ReportError(f"cannot report on {len(problems)} of the given folders:\n  " + "\n  ".join(problems))
    _unique_names(runs)
    assign_data_groups(runs)
    return runs


def _load(path: pathlib.Path) -> tuple[list[str], RunData | None]:
    if not path.exists():
        return [f"{path}: does not exist"], None
    if not path.is_dir():
        return [f"{path}: is not a directory (pass a run's --output_dir folder)"], None
    present = [name for name in RUN_FILES if (path / name).is_file()]
    if not present:
        return [f"{path}: is not a run directory: it holds none of {', '.join(RUN_FILES)} "
                "(pass the folder a baseline's --output_dir wrote)"], None
    try:
        record = run_record.read_run_record(path) if (path / run_record.RUN_RECORD).is_file() else None
        flags = _read_json(path / FLAGS_FILE) if (path / FLAGS_FILE).is_file() else {}
    except ValueError as e:
        return [f"{path}: {e}"], None
    evaluations = summaries.read_metrics(path)
    if record is None and not evaluations:
        return [f"{path}: has no evaluations yet: no run.json and no line in {summaries.METRICS_FILE} "
                "(a run writes its first evaluation at the end of its first epoch; report on it after that)"], None
    if record is not None:
        flags = dict(record.get("flags") or flags)
    return [], RunData(path=path, name=path.name, record=record, flags=flags, evaluations=evaluations,
                       curves=run_curves.read_curves(path))


def _read_json(path: pathlib.Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path.name} is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path.name} does not hold a JSON object")
    return value


def _unique_names(runs: Sequence[RunData]) -> None:
    """Folder names; the last two (three) path parts where two runs share a name."""
    for depth in (1, 2, 3):
        names = ["/".join(run.path.resolve().parts[-depth:]) for run in runs]
        if len(set(names)) == len(names):
            break
    else:
        names = [str(run.path.resolve()) for run in runs]
    for run, name in zip(runs, names):
        run.name = name


def assign_data_groups(runs: Sequence[RunData]) -> dict[str, dict[str, Any]]:
    """Label runs evaluated on the same data with the same letter (A, B, ...).

    Same data = same dataset and same test-set fingerprint (run.json `data_fingerprint`:
    sha256 of the evaluated examples as the model saw them). An unfinished run has no
    fingerprint yet: it joins the one group of its dataset if there is exactly one (and
    the report says it was assumed), else it gets a group of its own. Returns {letter:
    {"dataset", "fingerprint", "runs": [names], "assumed": [names]}}.
    """
    groups: dict[tuple[Any, Any], str] = {}
    info: dict[str, dict[str, Any]] = {}
    pending = []
    for run in runs:
        if run.data_fingerprint is None:
            pending.append(run)
            continue
        key = (run.dataset, run.data_fingerprint)
        if key not in groups:
            groups[key] = _letter(len(groups))
            info[groups[key]] = {"dataset": run.dataset, "fingerprint": run.data_fingerprint, "runs": [],
                                 "assumed": []}
        run.data_group = groups[key]
        info[run.data_group]["runs"].append(run.name)
    for run in pending:
        same = [letter for (dataset, _), letter in groups.items() if dataset == run.dataset]
        if len(same) == 1:
            run.data_group = same[0]
            info[same[0]]["assumed"].append(run.name)
        else:
            key = (run.dataset, f"unrecorded:{run.name}")
            groups[key] = run.data_group = _letter(len(groups))
            info[run.data_group] = {"dataset": run.dataset, "fingerprint": None, "runs": [], "assumed": []}
        info[run.data_group]["runs"].append(run.name)
    return info


def _letter(i: int) -> str:
    return chr(ord("A") + i) if i < 26 else f"G{i + 1}"


def headline_columns(runs: Iterable[RunData]) -> list[str]:
    """Metric keys for the headline table: the classification headline (accuracy,
    calibration, corrupted, OOD, cost) of any run, then regression runs' figures."""
    keys: list[str] = []
    for run in runs:
        metrics = run.metrics
        names = [k for k, _ in summaries.headline_metrics(metrics)]
        if run.is_regression:
            part = "validation" if any(k.startswith("validation/") for k in metrics) else "test"
            names += [f"{part}/{m}" for m in REGRESSION_HEADLINE if metrics.get(f"{part}/{m}") is not None]
        keys += [k for k in names if k not in keys]
    order = {k: i for i, k in enumerate(summaries.HEADLINE)}
    return sorted(keys, key=lambda k: (order.get(k, len(order) + (0 if k.startswith("ood/") else 1)), k))


def flags_command(flags: Mapping[str, Any]) -> str:
    """The flags of a run that did not record its command, as command-line arguments."""
    def value(v: Any) -> str:
        return ",".join(map(str, v)) if isinstance(v, list) else str(v)
    return " ".join(f"--{k}={value(v)}" for k, v in sorted(flags.items()) if v is not None and v != [])
