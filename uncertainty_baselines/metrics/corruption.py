"""Aggregation over corruption types and severities (CIFAR-10-C, ImageNet-C) and mCE.

Results are keyed by ``(corruption_type, severity)``; the grid must be complete (every type
evaluated at the same severities) so that every mean is over the same cells.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def _check_grid(keys: list[tuple[str, int]], what: str) -> tuple[list[str], list[int]]:
    """Sorted corruption types and severities of a complete (type, severity) grid."""
    if not keys:
        raise ValueError(f"{what} is empty: expected results keyed by (corruption_type, "
                         "severity)")
    for key in keys:
        if not (isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], str)):
            raise ValueError(f"{what} keys must be (corruption_type: str, severity: int), "
                             f"got {key!r}")
    types = sorted({t for t, _ in keys})
    severities = sorted({int(s) for _, s in keys})
    present = set(keys)
    missing = [(t, s) for t in types for s in severities if (t, s) not in present]
    if missing:
        raise ValueError(f"{what} is not a complete grid of {types} x severities "
                         f"{severities}: missing {missing}")
    return types, severities


def aggregate_corrupted(results: Mapping[tuple[str, int], Mapping[str, float]]
                        ) -> dict[str, float]:
    """Flattens per-cell metrics and adds their means, with the reference key names.

    For every metric m (e.g. ``accuracy``, ``negative_log_likelihood``, ``ece``):
    ``m_<type>_<severity>`` (each cell), ``m_<type>`` (mean over severities),
    ``m_mean_severity_<s>`` (mean over types) and ``m_mean_corrupted`` (mean over all cells).
    """
    types, severities = _check_grid(list(results), "corrupted results")
    metric_names = sorted(next(iter(results.values())))
    for key, metrics in results.items():
        if sorted(metrics) != metric_names:
            raise ValueError(f"corrupted results {key} hold metrics {sorted(metrics)}, "
                             f"expected the same as every other cell: {metric_names}")
    flat: dict[str, float] = {}
    for name in metric_names:
        grid = np.array([[float(results[(t, s)][name]) for s in severities] for t in types])
        for i, t in enumerate(types):
            for j, s in enumerate(severities):
                flat[f"{name}_{t}_{s}"] = float(grid[i, j])
            flat[f"{name}_{t}"] = float(grid[i].mean())
        for j, s in enumerate(severities):
            flat[f"{name}_mean_severity_{s}"] = float(grid[:, j].mean())
        flat[f"{name}_mean_corrupted"] = float(grid.mean())
    return flat


def corruption_errors(errors: Mapping[tuple[str, int], float],
                      reference_errors: Mapping[tuple[str, int], float]) -> dict[str, float]:
    """Corruption error per type (Hendrycks & Dietterich 2019):
    CE_c = sum_s E_{s,c} / sum_s E^ref_{s,c}, with top-1 error rates E of the model and of a
    reference model (AlexNet for ImageNet-C) on the same (type, severity) grid."""
    types, severities = _check_grid(list(errors), "errors")
    if set(errors) != set(reference_errors):
        raise ValueError(
            f"errors and reference_errors must cover the same (type, severity) cells; only in "
            f"errors: {sorted(set(errors) - set(reference_errors))}, only in reference: "
            f"{sorted(set(reference_errors) - set(errors))}")
    ce = {}
    for t in types:
        reference = sum(float(reference_errors[(t, s)]) for s in severities)
        if reference <= 0:
            raise ValueError(f"reference errors of {t!r} sum to {reference}: must be positive")
        ce[t] = sum(float(errors[(t, s)]) for s in severities) / reference
    return ce


def mean_corruption_error(errors: Mapping[tuple[str, int], float],
                          reference_errors: Mapping[tuple[str, int], float]) -> float:
    """mCE: the mean over corruption types of :func:`corruption_errors` (a ratio; the
    literature prints it x100, e.g. 75.4 for ResNet-50 on ImageNet-C)."""
    return float(np.mean(list(corruption_errors(errors, reference_errors).values())))
