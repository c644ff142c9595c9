"""A sweep's results in one table (CSV and JSONL) and an interactive parallel-coordinates page.

Each row is one run: its id, swept flags, status, its final metrics from run.json (the
definition's `metrics`, or every metric), wall time, then the run's other (fixed) flags. The page is a HiPlot
(facebookresearch/hiplot, MIT) parallel-coordinates plot with its linked table: drag on an
axis to select a range, reorder axes, colour by a metric. `Experiment.to_html()` inlines
HiPlot's script bundle, so the page is one self-contained file that works offline; the
one external URL in the bundle (a web-font `@import` in the dark theme's CSS, which
browsers ignore where it sits) is removed, so nothing on the page points off the machine.
"""
from __future__ import annotations

import csv
import html
import json
import math
import os
import pathlib
from typing import Any, Sequence

from uncertainty_baselines.runs.run_record import RUN_RECORD
from uncertainty_baselines.sweep.runner import read_plan
from uncertainty_baselines.sweep.space import SweepError

RESULTS_CSV, RESULTS_JSONL, PAGE = "results.csv", "results.jsonl", "sweep.html"
FONT_IMPORT = '@import\\"https://fonts.googleapis.com/css?family=Lato:400,700,400italic&display=swap\\"'


def collect_rows(out: str | os.PathLike) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One row per run of the sweep folder `out` and the sweep's plan (sweep.json)."""
    out = pathlib.Path(out)
    plan = read_plan(out)
    swept, wanted = plan["swept"], plan.get("metrics") or []
    rows = []
    for run in plan["runs"]:
        run_dir = out / "runs" / run["id"]
        row: dict[str, Any] = {"run": run["id"]}
        row.update({name: _plain(run["flags"].get(name)) for name in swept})
        record_path = run_dir / RUN_RECORD
        if record_path.is_file():
            record = json.loads(record_path.read_text())
            metrics = record.get("metrics") or {}
            keys = wanted or sorted(metrics)
            row["status"] = "finished"
            row.update({key: metrics.get(key) for key in keys})
            row["wall_time_s"] = record.get("wall_time_s")
        else:
            failed = out / "logs" / f"{run['id']}.failed"
            row["status"] = "failed" if failed.is_file() else ("started" if run_dir.exists() else "pending")
            row.update({key: None for key in wanted})
        row.update({name: _plain(value) for name, value in sorted(run["flags"].items()) if name not in row})
        rows.append(row)
    return rows, plan


def missing_metrics(rows: Sequence[dict[str, Any]], plan: dict[str, Any]) -> list[str]:
    """Messages for the definition's metrics that no finished run recorded (a misspelt key)."""
    finished = [row for row in rows if row.get("status") == "finished"]
    if not finished:
        return []
    messages = []
    for key in plan.get("metrics") or []:
        if all(row.get(key) is None for row in finished):
            messages.append(f"metric {key!r} is in no finished run's run.json (see a run's run.json for the names)")
    return messages


def write_results(out: str | os.PathLike, *, page: bool = True) -> dict[str, pathlib.Path]:
    """results.csv, results.jsonl and (with `page`, when HiPlot is installed) sweep.html in
    the sweep folder `out`; returns the paths written."""
    out = pathlib.Path(out)
    rows, plan = collect_rows(out)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    written = {}
    tmp = out / f".{RESULTS_CSV}.tmp-{os.getpid()}"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows({k: ("" if row.get(k) is None else row.get(k)) for k in columns} for row in rows)
    os.replace(tmp, out / RESULTS_CSV)
    written["csv"] = out / RESULTS_CSV
    tmp = out / f".{RESULTS_JSONL}.tmp-{os.getpid()}"
    tmp.write_text("".join(json.dumps(row, sort_keys=False) + "\n" for row in rows))
    os.replace(tmp, out / RESULTS_JSONL)
    written["jsonl"] = out / RESULTS_JSONL
    if page:
        html = parallel_coordinates_page(rows, plan)
        tmp = out / f".{PAGE}.tmp-{os.getpid()}"
        tmp.write_text(html, encoding="utf-8")
        os.replace(tmp, out / PAGE)
        written["page"] = out / PAGE
    return written


def parallel_coordinates_page(rows: Sequence[dict[str, Any]], plan: dict[str, Any]) -> str:
    """The HiPlot page of the finished rows: an axis per swept flag then per metric,
    coloured by the definition's first metric; log axes for flags spanning a decade or more.
    SweepError (saying how to install it) when HiPlot is missing."""
    try:
        import hiplot as hip
    except ImportError:
        raise SweepError("the parallel-coordinates page needs HiPlot: pip install 'uncertainty_baselines[report]' "
                         "(results.csv and results.jsonl are written without it)") from None
    finished = [row for row in rows if row.get("status") == "finished"]
    if not finished:
        raise SweepError("no finished run yet: nothing to plot")
    swept = plan["swept"]
    metrics = [k for k in (plan.get("metrics") or []) if any(r.get(k) is not None for r in finished)] or [
        k for k in finished[0] if "/" in k]
    columns = ["run", *swept, *metrics, "wall_time_s"]
    exp = hip.Experiment.from_iterable([{k: _short(row.get(k)) for k in columns} for row in finished])
    for name in swept:
        values = [row[name] for row in finished if isinstance(row.get(name), (int, float)) and row[name] > 0]
        if len(set(values)) > 1 and max(values) / min(values) >= 10 and not all(isinstance(v, bool) for v in values):
            exp.parameters_definition[name].type = hip.ValueType.NUMERIC_LOG
    if metrics:
        exp.colorby = metrics[0]
    # HiPlot lays `order` out from right to left: flags on the left, metrics on the right.
    exp.display_data(hip.Displays.PARALLEL_PLOT).update({"order": [*swept, *metrics][::-1],
                                                        "hide": ["uid", "from_uid", "run", "wall_time_s"]})
    exp.display_data(hip.Displays.TABLE).update({"hide": ["from_uid"]})
    html = exp.to_html()
    html = html.replace(FONT_IMPORT, "")
    title = f"Sweep: {plan['script']} ({len(finished)} of {len(rows)} runs finished)"
    return html.replace("<title>HiPlot</title>", f"<title>{_escape(title)}</title>", 1)


def _plain(value: Any) -> Any:
    """A flag value as a table cell: lists joined, everything else as it is."""
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _short(value: Any) -> Any:
    """Floats with 6 significant digits on the page (the CSV keeps them whole)."""
    return float(f"{value:.6g}") if isinstance(value, float) else value


def _escape(text: str) -> str:
    return html.escape(text)


def summary(rows: Sequence[dict[str, Any]]) -> str:
    """'N finished, M failed, K pending' of a sweep's rows."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))

