"""Evaluation curves: `curves.jsonl`, what a report draws beside the numbers of metrics.jsonl.

Every evaluation of a classifier appends one JSON line, at the same step as its
metrics.jsonl line (`training.evaluation.evaluate(..., curves=...)` computes it):

    {"step": 24, "epoch": 3,                 # the same context as the metrics.jsonl line
     "reliability": {                        # top-label reliability diagram per evaluated set
        "test": {"count": [B ints], "confidence": [B], "accuracy": [B]},
        "test/gaussian_noise_3": {...},      # corrupted sets: test/<type>_<severity>
        "imagenet_a": {...},                 # shifted test sets (ImageNet-A, -R, -V2) by name
        "ood/combined": {...}},              # an OOD set whose every example has a class
     "roc": {                                # ROC curve per OOD set and score kind, OOD positive
        "mnist": {"dataset": "mnist", "kind": "msp", "fpr": [...], "tpr": [...],
                  "num_in": 10000, "num_ood": 5000},
        "mnist_entropy": {...}}}             # keyed as the ood/<key>_auroc metrics

Reliability bins are the B equal-width confidence bins of `ub.metrics.ClassificationMetrics`
(B = 15 by default, bin b = [b/B, (b+1)/B)): `count` examples, their mean confidence and
accuracy (null for an empty bin), so ECE = sum_b count_b |accuracy_b - confidence_b| / N.
ROC curves start at (0, 0), end at (1, 1) and hold at most `ROC_POINTS` vertices of the
exact curve (`ub.metrics.roc_curve`). Floats keep 6 significant digits. Plain JSON: any
tool reads it without this package.
"""
from __future__ import annotations

import json
import math
import os
import pathlib
from typing import Any, Iterable, Mapping

CURVES_FILE = "curves.jsonl"
ROC_POINTS = 201


def reliability_entry(diagram: Mapping[str, Iterable[float]]) -> dict[str, list]:
    """The record of a reliability diagram (`ClassificationMetrics.reliability_diagram()`)."""
    return {"count": [int(c) for c in diagram["count"]],
            "confidence": [_number(v) for v in diagram["confidence"]],
            "accuracy": [_number(v) for v in diagram["accuracy"]]}


def roc_entry(fpr: Iterable[float], tpr: Iterable[float], *, dataset: str, kind: str,
              num_in: int, num_ood: int) -> dict[str, Any]:
    """The record of one OOD set's ROC curve for one score kind."""
    return {"dataset": dataset, "kind": kind, "fpr": [_number(v) for v in fpr],
            "tpr": [_number(v) for v in tpr], "num_in": int(num_in), "num_ood": int(num_ood)}


def append_curves(output_dir: str | os.PathLike, step: int, curves: Mapping[str, Any],
                  **context: Any) -> dict[str, Any]:
    """Append the curves of the evaluation at `step` (with `context`, e.g. epoch).

    Lines of this or later steps (left by a process that crashed after evaluating and before
    its next checkpoint, redone after the resume) are dropped first, so the file never holds
    two evaluations of one step. Returns the record written.
    """
    path = pathlib.Path(output_dir) / CURVES_FILE
    record = {"step": int(step), **context, **curves}
    lines = path.read_text().splitlines() if path.is_file() else []
    earlier = _parse(lines)
    if len(earlier) != len(lines) or any(r["step"] >= step for r in earlier):
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in earlier if r["step"] < step))
        os.replace(tmp, path)
    with open(path, "a") as f:
        f.write(json.dumps(record, sort_keys=True, allow_nan=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return record


def read_curves(output_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Every complete line of `curves.jsonl` ([] when absent; a torn last line is ignored)."""
    path = pathlib.Path(output_dir) / CURVES_FILE
    return _parse(path.read_text().splitlines()) if path.is_file() else []


def _parse(lines: list[str]) -> list[dict[str, Any]]:
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break  # Only the last line can be torn: lines are appended and fsynced in order.
    return records


def _number(value: Any) -> float | None:
    value = float(value)
    return float(f"{value:.6g}") if math.isfinite(value) else None
