"""The report's pictures, drawn with matplotlib (Agg, no display) into PNG bytes.

Each function takes plain records (runs/curves.py entries, flat metrics, metrics.jsonl
lines) and returns the PNG, or None when there is nothing to draw.
"""
from __future__ import annotations

import io
import re
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from uncertainty_baselines.metrics.ood import SCORE_KINDS

DPI = 90
CLASSIFICATION = (("accuracy", "accuracy", "higher is better"),
                  ("negative_log_likelihood", "NLL", "lower is better"),
                  ("ece", "ECE", "lower is better"))
TRAINING_PANELS = (("train/loss", "train loss"), ("train/accuracy", "train accuracy"),
                   ("test/accuracy", "test accuracy"), ("test/negative_log_likelihood", "test NLL"),
                   ("test/ece", "test ECE"))
LINESTYLES = ("-", "--", ":", "-.")


def colors(n: int) -> list[Any]:
    """n distinct colours (tab10, then tab20)."""
    from matplotlib import colormaps
    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def run_colors(names: Sequence[str], palette: Mapping[str, Any] | None = None) -> list[Any]:
    """A colour per run: `palette`'s (the same run keeps its colour in every figure of a
    page), else distinct ones."""
    if palette is not None:
        return [palette[name] for name in names]
    return colors(len(names))


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes."""
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def pool_reliability(entries: Sequence[Mapping[str, Any]]) -> dict[str, list]:
    """One reliability entry over several sets with the same bins (counts add up; the
    bins' mean confidence and accuracy are count-weighted)."""
    count = np.sum([e["count"] for e in entries], axis=0)
    def weighted(field: str) -> list:
        total = np.sum([np.nan_to_num(np.array(e[field], float)) * np.array(e["count"]) for e in entries], axis=0)
        return [float(t / c) if c else None for t, c in zip(total, count)]
    return {"count": count.tolist(), "confidence": weighted("confidence"), "accuracy": weighted("accuracy")}


def expected_calibration_error(entry: Mapping[str, Any]) -> float:
    """ECE of a reliability entry: sum_b n_b |acc_b - conf_b| / N."""
    count = np.array(entry["count"], float)
    gap = np.abs(np.array([a if a is not None else 0.0 for a in entry["accuracy"]], float)
                 - np.array([c if c is not None else 0.0 for c in entry["confidence"]], float))
    return float(np.sum(count * gap) / max(count.sum(), 1))


def reliability_figure(entry: Mapping[str, Any], title: str) -> bytes:
    """Top-label reliability diagram: accuracy per confidence bin against the diagonal, the
    gap to each bin's mean confidence shaded, and the share of examples per bin below."""
    count = np.array(entry["count"], float)
    bins = len(count)
    edges = np.arange(bins) / bins
    acc = np.array([a if a is not None else np.nan for a in entry["accuracy"]], float)
    conf = np.array([c if c is not None else np.nan for c in entry["confidence"]], float)
    fig = Figure(figsize=(3.3, 3.9))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.08})
    filled = count > 0
    top.bar(edges[filled], acc[filled], width=1 / bins, align="edge", color="#4c72b0", edgecolor="white",
            label="accuracy")
    top.bar(edges[filled], conf[filled] - acc[filled], bottom=acc[filled], width=1 / bins, align="edge",
            color="#dd8452", alpha=0.45, edgecolor="#dd8452", hatch="//", label="gap to confidence")
    top.plot([0, 1], [0, 1], color="0.3", linestyle="--", linewidth=1)
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.set_title(title, fontsize=9)
    top.text(0.04, 0.93, f"ECE {expected_calibration_error(entry):.4f}\nN = {int(count.sum()):,}",
             va="top", fontsize=8, transform=top.transAxes)
    top.legend(loc="lower right", fontsize=7, frameon=False)
    bottom.bar(edges, count / max(count.sum(), 1), width=1 / bins, align="edge", color="0.55", edgecolor="white")
    bottom.set_xlabel("confidence (max probability)")
    bottom.set_ylabel("share", fontsize=8)
    return png(fig)


def _corrupted_cells(metrics: Mapping[str, Any], metric: str) -> dict[tuple[str, int], float]:
    """{(type, severity): value} of `test/<metric>_<type>_<severity>` keys."""
    cells = {}
    pattern = re.compile(rf"^test/{re.escape(metric)}_(.+)_(\d)$")
    for key, value in metrics.items():
        m = pattern.match(key)
        if m and value is not None and not m.group(1).startswith(("mean_severity", "member")):
            cells[(m.group(1), int(m.group(2)))] = float(value)
    return cells


def corruption_types(metrics: Mapping[str, Any]) -> list[str]:
    """The corruption types a run was evaluated on (from its flat metrics)."""
    return sorted({t for t, _ in _corrupted_cells(metrics, "accuracy")})


def severity_figure(runs: Sequence[tuple[str, Mapping[str, Any]]],
                    palette: Mapping[str, Any] | None = None) -> bytes | None:
    """Accuracy, NLL and ECE against corruption severity (0 = the clean test set), one line
    per run: the mean over the corruption types, the bar spanning the types' min to max."""
    runs = [(name, m) for name, m in runs if _corrupted_cells(m, "accuracy")]
    if not runs:
        return None
    fig = Figure(figsize=(11, 3.4))
    axes = fig.subplots(1, 3)
    palette = run_colors([name for name, _ in runs], palette)
    offsets = np.linspace(-0.12, 0.12, len(runs)) if len(runs) > 1 else [0.0]
    for ax, (metric, label, better) in zip(axes, CLASSIFICATION):
        for (name, m), color, dx in zip(runs, palette, offsets):
            cells = _corrupted_cells(m, metric)
            severities = sorted({s for _, s in cells})
            xs, means, lows, highs = [], [], [], []
            if m.get(f"test/{metric}") is not None:
                xs.append(0)
                means.append(m[f"test/{metric}"])
                lows.append(m[f"test/{metric}"])
                highs.append(m[f"test/{metric}"])
            for s in severities:
                values = [v for (_, sev), v in cells.items() if sev == s]
                xs.append(s)
                means.append(float(np.mean(values)))
                lows.append(min(values))
                highs.append(max(values))
            xs = np.array(xs, float) + dx
            means, lows, highs = map(np.array, (means, lows, highs))
            ax.errorbar(xs, means, yerr=[means - lows, highs - means], color=color, marker="o", markersize=4,
                        capsize=2, linewidth=1.4, elinewidth=0.8, label=name)
        ax.set_xticks(range(0, 6))
        ax.set_xticklabels(["clean", "1", "2", "3", "4", "5"])
        ax.set_xlabel("corruption severity")
        ax.set_title(f"{label} ({better})", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle("Mean over corruption types (bars: min to max over the types)", fontsize=9)
    return png(fig)


def corruption_type_figure(runs: Sequence[tuple[str, Mapping[str, Any]]],
                           palette: Mapping[str, Any] | None = None) -> bytes | None:
    """Accuracy, NLL and ECE per corruption type (mean over the evaluated severities), a bar
    per run."""
    runs = [(name, m) for name, m in runs if _corrupted_cells(m, "accuracy")]
    if not runs:
        return None
    types = sorted({t for _, m in runs for t in corruption_types(m)})
    fig = Figure(figsize=(min(11.0, 3.0 + 0.35 * len(types) * max(2, len(runs))), 2.3 * 3 + 0.8))
    axes = fig.subplots(3, 1, sharex=True)
    palette = run_colors([name for name, _ in runs], palette)
    width = 0.8 / len(runs)
    for ax, (metric, label, better) in zip(axes, CLASSIFICATION):
        for i, ((name, m), color) in enumerate(zip(runs, palette)):
            cells = _corrupted_cells(m, metric)
            values = [np.mean([v for (t, _), v in cells.items() if t == kind]) if any(
                t == kind for t, _ in cells) else np.nan for kind in types]
            ax.bar(np.arange(len(types)) + (i - (len(runs) - 1) / 2) * width, values, width=width, color=color,
                   label=name)
        ax.set_ylabel(label)
        ax.set_title(f"{label} per corruption type ({better})", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[-1].set_xticks(range(len(types)))
    axes[-1].set_xticklabels([t.replace("_", " ") for t in types], rotation=30, ha="right", fontsize=8)
    axes[0].legend(fontsize=7, ncol=min(len(runs), 4), loc="lower left")
    return png(fig)


def type_severity_figure(runs: Sequence[tuple[str, Mapping[str, Any]]], metric: str = "accuracy",
                         palette: Mapping[str, Any] | None = None) -> bytes | None:
    """`metric` against severity for each corruption type (a panel per type, a line per run
    starting at the clean value; a run evaluated at one severity is a point there); None
    unless some run was evaluated at several severities."""
    if not any(len({s for _, s in _corrupted_cells(m, metric)}) > 1 for _, m in runs):
        return None
    runs = [(name, m) for name, m in runs if _corrupted_cells(m, metric)]
    label = dict((k, v) for k, v, _ in CLASSIFICATION).get(metric, metric)
    types = sorted({t for _, m in runs for t in corruption_types(m)})
    cols = min(5, len(types))
    rows = -(-len(types) // cols)
    fig = Figure(figsize=(2.4 * cols, 2.0 * rows + 0.6))
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True).ravel()
    palette = run_colors([name for name, _ in runs], palette)
    for ax, kind in zip(axes, types):
        for (name, m), color in zip(runs, palette):
            cells = sorted((s, v) for (t, s), v in _corrupted_cells(m, metric).items() if t == kind)
            if m.get(f"test/{metric}") is not None:
                cells = [(0, m[f"test/{metric}"])] + cells
            if cells:
                ax.plot(*zip(*cells), color=color, marker="o", markersize=3, linewidth=1.3, label=name)
        ax.set_title(kind.replace("_", " "), fontsize=8)
        ax.set_xticks(range(6))
        ax.set_xticklabels(["c", "1", "2", "3", "4", "5"], fontsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[len(types):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=6)
    fig.suptitle(f"{label} per corruption type against severity (c = clean)", fontsize=9)
    fig.tight_layout()
    return png(fig)


def roc_figure(dataset: str, curves: Sequence[tuple[str, Mapping[str, Any]]],
               palette: Mapping[str, Any] | None = None) -> bytes | None:
    """ROC curves of one OOD set (OOD positive): a colour per run, a line style per score
    kind, the area under each curve in the legend."""
    if not curves:
        return None
    fig = Figure(figsize=(4.8, 4.4))
    ax = fig.subplots()
    names = list(dict.fromkeys(name for name, _ in curves))
    kinds = list(dict.fromkeys(entry["kind"] for _, entry in curves))
    palette = dict(zip(names, run_colors(names, palette)))
    for name, entry in curves:
        area = float(np.trapezoid(entry["tpr"], entry["fpr"]))
        kind = entry["kind"]
        ax.plot(entry["fpr"], entry["tpr"], color=palette[name], linewidth=1.5,
                linestyle=LINESTYLES[kinds.index(kind) % len(LINESTYLES)],
                label=f"{name} ({kind}) AUROC {area:.3f}")
    ax.plot([0, 1], [0, 1], color="0.6", linestyle=":", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false-positive rate (in-distribution flagged)")
    ax.set_ylabel("true-positive rate (OOD detected)")
    first = curves[0][1]
    ax.set_title(f"OOD: {dataset} ({first['num_ood']:,} OOD vs {first['num_in']:,} in-distribution)", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    return png(fig)


def msp_ood_keys(keys: Sequence[str], metric: str = "auroc") -> list[str]:
    """The `ood/<set>_<metric>` keys of the default score (1 - max probability), without the
    other score kinds' `ood/<set>_<kind>_<metric>`."""
    suffix = f"_{metric}"
    stems = [k.removeprefix("ood/").removesuffix(suffix) for k in keys if k.startswith("ood/") and k.endswith(suffix)]
    return sorted(f"ood/{s}{suffix}" for s in set(stems) if not s.endswith(tuple(f"_{kind}" for kind in SCORE_KINDS)))


def training_figure(runs: Sequence[tuple[str, Sequence[Mapping[str, Any]]]],
                    palette: Mapping[str, Any] | None = None) -> bytes | None:
    """Training and evaluation curves from metrics.jsonl: a line per run over epochs (steps
    when a run has no epochs). A run with a single evaluation (an ensemble of finished
    runs, --eval_only) is a dotted horizontal line at its value."""
    runs = [(name, lines) for name, lines in runs if lines and "split" not in lines[0]]
    curves = [(name, lines) for name, lines in runs if len(lines) > 1]
    if not curves:
        return None
    keys = {k for _, lines in curves for line in lines for k, v in line.items() if v is not None}
    panels = [(k, label) for k, label in TRAINING_PANELS if k in keys]
    panels += [(k, f"{k.removeprefix('ood/').removesuffix('_auroc')} AUROC (OOD)") for k in msp_ood_keys(keys)[:3]]
    by_epoch = all("epoch" in line for _, lines in curves for line in lines)
    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(3.0 * cols, 2.6 * rows + 0.5))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    palette = run_colors([name for name, _ in runs], palette)
    for ax, (key, label) in zip(axes, panels):
        for (name, lines), color in zip(runs, palette):
            points = [(line.get("epoch") if by_epoch else line["step"], line[key]) for line in lines
                      if line.get(key) is not None]
            if len(lines) == 1 and points:
                ax.axhline(points[0][1], color=color, linestyle=":", linewidth=1.6, label=f"{name} (one evaluation)")
            elif points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, color=color, marker="o", markersize=3, linewidth=1.4, label=name)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("epoch" if by_epoch else "step", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    handles, labels = {}, {}
    for ax in axes[:len(panels)]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(list(handles.values()), list(handles), fontsize=7, loc="lower center",
               ncol=min(len(handles), 4), bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.tight_layout()
    return png(fig)


def splits_figure(runs: Sequence[tuple[str, Sequence[Mapping[str, Any]]]],
                  palette: Mapping[str, Any] | None = None) -> bytes | None:
    """Per-split results of regression (UCI) runs: each split's test log-likelihood and RMSE,
    a column of points per run with the mean marked."""
    runs = [(name, lines) for name, lines in runs if lines and "split" in lines[0]]
    if not runs:
        return None
    part = "validation" if any(k.startswith("validation/") for _, lines in runs for k in lines[0]) else "test"
    panels = [(f"{part}/log_likelihood", "log-likelihood (higher is better)"),
              (f"{part}/rmse", "RMSE (lower is better)")]
    fig = Figure(figsize=(max(5.0, 1.2 * len(runs) + 3), 3.4))
    axes = fig.subplots(1, 2)
    palette = run_colors([name for name, _ in runs], palette)
    rng = np.random.default_rng(0)
    for ax, (key, label) in zip(axes, panels):
        for i, ((name, lines), color) in enumerate(zip(runs, palette)):
            values = np.array([line[key] for line in lines if line.get(key) is not None], float)
            if values.size:
                ax.scatter(i + rng.uniform(-0.15, 0.15, values.size), values, s=12, color=color, alpha=0.7)
                ax.hlines(values.mean(), i - 0.3, i + 0.3, color="black", linewidth=1.5)
        ax.set_xticks(range(len(runs)))
        ax.set_xticklabels([name for name, _ in runs], rotation=30, ha="right", fontsize=7)
        ax.set_title(f"{part} {label} per split", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    return png(fig)
