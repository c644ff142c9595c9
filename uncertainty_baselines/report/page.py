"""The report page: one static, self-contained HTML file (inline CSS, PNGs as data URIs,
no script, font or anything else fetched)."""
from __future__ import annotations

import base64
import datetime
import html
import os
import pathlib
import re
from typing import Any, Sequence

from uncertainty_baselines.report import figures
from uncertainty_baselines.report.runs import RunData, assign_data_groups, flags_command, headline_columns, load_runs

LOWER_IS_BETTER = ("negative_log_likelihood", "ece", "brier", "mce", "rmsce", "rmse", "crps", "fpr_at_95_tpr",
                   "interval_width_95", "ms_per_example", "loss", "disagreement")
SHORT_NAMES = (("negative_log_likelihood", "NLL"), ("accuracy", "acc"), ("_mean_corrupted", " corrupted"),
               ("ms_per_example", "ms/example"), ("_auroc", " AUROC"), ("_aupr_out", " AUPR-out"),
               ("log_likelihood", "LL"), ("interval_coverage_95", "95% coverage"),
               ("interval_width_95", "95% width"), ("_", " "))
CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px; color: #222;
       max-width: 1400px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ccc; }
h3 { font-size: 15px; margin-top: 20px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.best { font-weight: bold; background: #eef6ee; } td.na { color: #999; text-align: center; }
code { font-size: 12px; word-break: break-all; white-space: pre-wrap; }
.warning { background: #fff4e5; border: 1px solid #f0b45b; padding: 8px 12px; margin: 12px 0; }
.note { color: #555; font-size: 13px; } .group { display: inline-block; min-width: 1.4em; text-align: center;
        border-radius: 3px; background: #dde7f5; font-weight: bold; }
.wide { overflow-x: auto; }
.figures { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
figure { margin: 0; } figcaption { font-size: 12px; color: #444; max-width: 420px; }
img { max-width: 100%; height: auto; } .missing { color: #a33; }
"""


def write_report(run_dirs: Sequence[str | os.PathLike], out: str | os.PathLike, *,
                 title: str | None = None) -> pathlib.Path:
    """Read the runs in `run_dirs`, draw their pictures and write the page to `out`
    (atomically). ReportError (before anything is written) for folders that are not runs or
    have no evaluation yet."""
    runs = load_runs(run_dirs)
    return write_page(render_report(runs, title=title), out)


def write_page(page: str, out: str | os.PathLike) -> pathlib.Path:
    """Write an HTML page to `out` atomically (a temporary file renamed over it)."""
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out)
    return out


def data_warnings(runs: Sequence[RunData]) -> list[str]:
    """Sentences saying which runs were evaluated on different data (empty when all on the same)."""
    groups = assign_data_groups(runs)
    lines = []
    if len(groups) > 1:
        described = "; ".join(
            f"{letter} = {g['dataset']} (test-set fingerprint {(g['fingerprint'] or 'not recorded')[:12]}): "
            f"{', '.join(g['runs'])}" for letter, g in groups.items())
        lines.append(f"These {len(runs)} runs were evaluated on {len(groups)} different data sets: {described}. "
                     "Their numbers are not comparable across groups; every picture below compares runs of "
                     "one group only.")
    for letter, g in groups.items():
        if g["assumed"]:
            lines.append(f"{', '.join(g['assumed'])}: unfinished, so no data fingerprint is recorded yet; "
                         f"put in group {letter} by its dataset name ({g['dataset']}) alone.")
    return lines


def render_report(runs: Sequence[RunData], *, title: str | None = None) -> str:
    """The HTML page comparing `runs` (loaded by `load_runs`)."""
    title = title or f"Uncertainty Baselines: {len(runs)} run{'s' * (len(runs) != 1)} compared"
    warnings = data_warnings(runs)
    groups = list(dict.fromkeys(run.data_group for run in runs))
    parts = [f"<h1>{_e(title)}</h1>",
             f"<p class='note'>Generated {datetime.datetime.now().isoformat(timespec='seconds')} by "
             "<code>python -m uncertainty_baselines.report</code> from the run folders alone "
             "(run.json, flags.json, metrics.jsonl, curves.jsonl).</p>"]
    parts += [f"<div class='warning'>{_e(w)}</div>" for w in warnings]
    parts += ["<h2>Headline metrics</h2>", _headline_table(runs, multi_group=len(groups) > 1),
              "<h2>Runs</h2>", _provenance_table(runs),
              "<h2>Pictures available</h2>", _availability_table(runs)]
    for group in groups:
        members = [run for run in runs if run.data_group == group]
        heading = f"Data {group}: {members[0].dataset}" if len(groups) > 1 else f"Data: {members[0].dataset}"
        parts.append(f"<h2 id='group-{group}'>{_e(heading)}</h2>")
        parts += _group_sections(members)
    body = "\n".join(parts)
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>"
            f"<style>{CSS}</style></head>\n<body>\n{body}\n</body></html>\n")


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _img(data: bytes, alt: str, caption: str = "") -> str:
    source = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    cap = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
    return f"<figure><img src='{source}' alt='{_e(alt)}'>{cap}</figure>"


def _format(key: str, value: Any, metrics: dict[str, Any]) -> str:
    if value is None:
        return "—"
    if key.endswith("ms_per_example"):
        text = f"{value:.2f}"
    elif abs(value) >= 100:
        text = f"{value:,.1f}"
    else:
        text = f"{value:.4f}"
    se = metrics.get(f"{key}_se")
    return text + (f" ± {se:.4f}" if isinstance(se, (int, float)) else "")


def _better(key: str) -> int:
    """-1 when lower is better (losses, calibration errors, cost), else +1."""
    name = key.split("/", 1)[-1]
    return -1 if any(name == w or name.startswith(f"{w}_") or name.endswith(f"_{w}") for w in LOWER_IS_BETTER) else 1


def short_name(key: str) -> str:
    """A column heading: `test/negative_log_likelihood_mean_corrupted` -> `NLL corrupted`."""
    part, name = key.split("/", 1) if "/" in key else ("", key)
    for long, short in SHORT_NAMES:
        name = name.replace(long, short)
    name = re.sub(r"\bece\b", "ECE", re.sub(r"\bbrier\b", "Brier", name))
    return name if part in ("test", "") else f"{part}: {name}"


def _headline_table(runs: Sequence[RunData], multi_group: bool) -> str:
    columns = headline_columns(runs)
    header = "".join(f"<th title='{_e(c)}'>{_e(short_name(c))}</th>" for c in columns)
    best: dict[tuple[str, str], float] = {}
    for key in columns:
        for group in {run.data_group for run in runs}:
            values = [run.metrics.get(key) for run in runs if run.data_group == group and run.finished]
            values = [v for v in values if isinstance(v, (int, float))]
            if len(values) > 1 and not key.endswith(("ms_per_example", "num_examples")):
                best[(key, group)] = max(values) if _better(key) > 0 else min(values)
    rows = []
    for run in runs:
        metrics = run.metrics
        cells = []
        for key in columns:
            value = metrics.get(key)
            cls = "num best" if run.finished and best.get((key, run.data_group)) == value else "num"
            cells.append(f"<td class='{cls}'>{_e(_format(key, value, metrics))}</td>" if value is not None
                         else "<td class='na'>—</td>")
        status = ("finished" if run.finished
                  else f"unfinished (last evaluation, epoch {run.evaluations[-1].get('epoch')})")
        rows.append(f"<tr><td><b>{_e(run.name)}</b></td><td>{_e(run.method or '—')}</td>"
                    f"<td>{_e(run.dataset)} <span class='group'>{_e(run.data_group)}</span></td>"
                    f"<td>{_e(status)}</td>{''.join(cells)}</tr>")
    note = ("Bold: the best value of a column among the finished runs on the same data (hover a heading for "
            "the metric's full name). "
            + ("The letter after the dataset names the data group: compare only runs with the same letter. "
               if multi_group else "")
            + "A dash: not evaluated by that run.")
    return (f"<div class='wide'><table id='headline'><tr><th>run</th><th>method</th><th>data</th><th>status</th>"
            f"{header}</tr>" + "".join(rows) + f"</table></div><p class='note'>{_e(note)}</p>")


def _provenance_table(runs: Sequence[RunData]) -> str:
    rows = []
    for run in runs:
        record = run.record or {}
        if run.command:
            command = f"<code>{_e(run.command)}</code>"
        else:
            command = ("<span class='missing'>command not recorded (the run predates it); its flags:</span> "
                       f"<code>{_e(flags_command(run.flags))}</code>")
        wall = record.get("wall_time_s")
        facts = [f"created {record.get('created')}" if record.get("created") else "",
                 f"wall time {wall / 60:.1f} min" if isinstance(wall, (int, float)) else "",
                 f"{record['steps']:,} steps" if isinstance(record.get("steps"), int) else "",
                 f"{record['num_params']:,} parameters" if isinstance(record.get("num_params"), int) else "",
                 f"members: {', '.join(pathlib.Path(m).name for m in record['members'])}"
                 if record.get("members") else ""]
        rows.append(f"<tr><td><b>{_e(run.name)}</b><br><span class='note'>{_e(run.path)}</span></td>"
                    f"<td>{command}</td><td><code>{_e(run.commit)}</code></td>"
                    f"<td>{_e('; '.join(f for f in facts if f))}</td></tr>")
    return ("<table id='runs'><tr><th>run</th><th>command</th><th>commit</th><th>facts</th></tr>"
            + "".join(rows) + "</table>")


def availability(run: RunData) -> dict[str, str]:
    """For each kind of picture, 'yes' or why it is not drawn for this run."""
    metrics, last = run.metrics, run.last_curves
    predates = ("not recorded: the run has no curves.jsonl (it predates it, or its baseline does not write it; "
                "an --eval_only re-evaluation records it)")
    if run.is_regression:
        reliability = ood = corrupted = "not applicable (regression)"
    else:
        if last is None:
            reliability = predates
        else:
            reliability = "yes" if "test" in last.get("reliability", {}) else "not recorded"
        has_ood = any(k.startswith("ood/") and k.endswith("_auroc") for k in metrics)
        if not has_ood:
            ood = "not evaluated on OOD sets"
        elif last is None or not last.get("roc"):
            ood = predates.replace("not recorded", "ROC curves not recorded") + "; AUROC is in the table"
        else:
            ood = "yes"
        corrupted = "yes" if figures.corruption_types(metrics) else "not evaluated on corrupted sets"
    lines = run.evaluations
    if lines and "split" in lines[0]:
        training = f"per split ({len(lines)} splits)"
    elif len(lines) > 1:
        training = f"yes ({len(lines)} evaluations)"
    elif len(lines) == 1:
        training = ("one evaluation only (an ensemble of finished runs or --eval_only: no training)"
                    if "train/loss" not in lines[0] else "one evaluation only")
    else:
        training = "no metrics.jsonl"
    return {"reliability diagram": reliability, "corruption": corrupted, "OOD ROC": ood,
            "training curves": training}


def _availability_table(runs: Sequence[RunData]) -> str:
    kinds = list(availability(runs[0]))
    rows = []
    for run in runs:
        cells = "".join(f"<td>{'✓' if v == 'yes' else ''}{_e('' if v == 'yes' else v)}</td>"
                        for v in availability(run).values())
        rows.append(f"<tr><td><b>{_e(run.name)}</b></td>{cells}</tr>")
    return ("<table id='availability'><tr><th>run</th>" + "".join(f"<th>{_e(k)}</th>" for k in kinds)
            + "</tr>" + "".join(rows) + "</table>")


def _group_sections(runs: Sequence[RunData]) -> list[str]:
    parts = []
    palette = dict(zip([run.name for run in runs], figures.colors(len(runs))))
    # Reliability diagrams, a row per run: the clean test set, then all corrupted sets pooled.
    classifiers = [run for run in runs if not run.is_regression]
    if classifiers:
        parts.append("<h3>Reliability diagrams (final evaluation)</h3>")
        missing: dict[str, list[str]] = {}
        for run in classifiers:
            last, images = run.last_curves, []
            if last and "test" in last.get("reliability", {}):
                images.append(_img(figures.reliability_figure(last["reliability"]["test"], f"{run.name}: clean test"),
                                   f"reliability diagram of {run.name} on the clean test set"))
                corrupted_record = run.corrupted_curves or {}
                corrupted = [e for k, e in corrupted_record.get("reliability", {}).items() if k.startswith("test/")]
                if corrupted:
                    images.append(_img(figures.reliability_figure(
                        figures.pool_reliability(corrupted), f"{run.name}: {len(corrupted)} corrupted sets pooled"),
                        f"reliability diagram of {run.name} on its corrupted sets"))
                for key, entry in sorted(last.get("reliability", {}).items()):
                    if key != "test" and not key.startswith("test/"):  # shifted sets, classified OOD sets
                        images.append(_img(figures.reliability_figure(entry, f"{run.name}: {key}"),
                                           f"reliability diagram of {run.name} on {key}"))
                parts.append(f"<div class='figures'>{''.join(images)}</div>")
            else:
                missing.setdefault(availability(run)["reliability diagram"], []).append(run.name)
        parts += [f"<p class='missing'>Reliability diagram unavailable for {_e(', '.join(names))}: {_e(reason)}.</p>"
                  for reason, names in missing.items()]
    # Corruption: severity and type.
    metrics = [(run.name, run.metrics) for run in classifiers]
    severity = figures.severity_figure(metrics, palette)
    if severity:
        without = [run.name for run in classifiers if not figures.corruption_types(run.metrics)]
        parts.append("<h3>Accuracy, NLL and ECE against corruption severity</h3>")
        parts.append(_img(severity, "accuracy, NLL and ECE against corruption severity"))
        parts.append(_img(figures.corruption_type_figure(metrics, palette),
                          "accuracy, NLL and ECE per corruption type"))
        per_type = [(metric, figures.type_severity_figure(metrics, metric, palette))
                    for metric, _, _ in figures.CLASSIFICATION]
        parts.append("<div class='figures'>" + "".join(
            _img(png, f"{metric} per corruption type against severity") for metric, png in per_type if png) + "</div>")
        if without:
            parts.append(f"<p class='missing'>Not evaluated on corrupted sets: {_e(', '.join(without))}.</p>")
    # OOD: ROC curves per OOD set.
    roc_by_set: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for run in classifiers:
        for _, entry in sorted(((run.last_curves or {}).get("roc") or {}).items()):
            roc_by_set.setdefault(entry["dataset"], []).append((run.name, entry))
    no_roc: dict[str, list[str]] = {}
    for run in classifiers:
        if availability(run)["OOD ROC"] != "yes":
            no_roc.setdefault(availability(run)["OOD ROC"], []).append(run.name)
    if roc_by_set or any(run for run in classifiers if any(k.startswith("ood/") for k in run.metrics)):
        parts.append("<h3>OOD detection: ROC curves</h3>")
        parts.append("<div class='figures'>" + "".join(
            _img(figures.roc_figure(name, entries, palette), f"ROC curves on OOD set {name}")
            for name, entries in sorted(roc_by_set.items())) + "</div>")
        parts += [f"<p class='missing'>No ROC curve for {_e(', '.join(names))}: {_e(reason)}.</p>"
                  for reason, names in no_roc.items()]
    # Training and evaluation curves; per-split results of regression runs.
    training = figures.training_figure([(run.name, run.evaluations) for run in runs], palette)
    if training:
        parts.append("<h3>Training and evaluation curves (metrics.jsonl)</h3>")
        parts.append(_img(training, "training and evaluation curves"))
        single = [run.name for run in runs if len(run.evaluations) == 1 and "split" not in run.evaluations[0]]
        if single:
            parts.append(f"<p class='note'>One evaluation only, drawn as a dotted level: {_e(', '.join(single))}.</p>")
    splits = figures.splits_figure([(run.name, run.evaluations) for run in runs], palette)
    if splits:
        parts.append("<h3>Results per split (metrics.jsonl)</h3>")
        parts.append(_img(splits, "results per split"))
    return parts
