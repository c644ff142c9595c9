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


# AlexNet's top-1 error on ImageNet-C, mean over severities 1-5 (Hendrycks & Dietterich 2019;
# ../shared/reference/BASELINES.md): the denominators of ImageNet-C's mCE.
ALEXNET_IMAGENET_C_ERRORS: dict[str, float] = {
    "gaussian_noise": 0.886428, "shot_noise": 0.894468, "impulse_noise": 0.922640, "defocus_blur": 0.819880,
    "glass_blur": 0.826268, "motion_blur": 0.785948, "zoom_blur": 0.798360, "snow": 0.866816, "frost": 0.826572,
    "fog": 0.819324, "brightness": 0.564592, "contrast": 0.853204, "elastic_transform": 0.646056,
    "pixelate": 0.717840, "jpeg_compression": 0.606500}
FULL_SEVERITIES = (1, 2, 3, 4, 5)


def imagenet_c_mce(accuracies: Mapping[tuple[str, int], float],
                   reference_errors: Mapping[str, float] | None = None) -> dict[str, float]:
    """ImageNet-C's corruption errors from the model's top-1 accuracy per (type, severity):
    ``ce_<type>`` = mean_s E_{s,c} / (AlexNet's mean error over severities 1-5) and ``mce``,
    their mean over the evaluated types (the 15 benchmark types give the published mCE;
    ratios, not x100). `reference_errors` replaces AlexNet's per-type mean errors.

    Every type must be evaluated at all five severities (the reference means cover them all);
    ValueError otherwise, or for a type without a reference error.
    """
    reference = ALEXNET_IMAGENET_C_ERRORS if reference_errors is None else reference_errors
    types, severities = _check_grid(list(accuracies), "accuracies")
    if tuple(severities) != FULL_SEVERITIES:
        raise ValueError(f"mCE needs every severity 1-5 (the reference errors are means over all five), "
                         f"got {severities}")
    unknown = [t for t in types if t not in reference]
    if unknown:
        raise ValueError(f"no reference error for corruption type(s) {unknown}")
    ce = {t: float(np.mean([1.0 - float(accuracies[(t, s)]) for s in severities])) / reference[t]
          for t in types}
    return {**{f"ce_{t}": v for t, v in ce.items()}, "mce": float(np.mean(list(ce.values())))}


def imagenet_c_mce_from_flat(flat: Mapping[str, float], split: str = "test") -> dict[str, float]:
    """`imagenet_c_mce` from a run's flat metrics (``<split>/accuracy_<type>_<severity>`` of
    the benchmark types), as ``<split>/mean_corruption_error`` and
    ``<split>/corruption_error_<type>`` (``<split>/mce`` is the max calibration error); empty
    when some evaluated benchmark type lacks a severity (no mCE is defined then)."""
    accuracies = {}
    for t in ALEXNET_IMAGENET_C_ERRORS:
        for s in FULL_SEVERITIES:
            key = f"{split}/accuracy_{t}_{s}"
            if key in flat:
                accuracies[(t, s)] = float(flat[key])
    types = {t for t, _ in accuracies}
    if not accuracies or any((t, s) not in accuracies for t in types for s in FULL_SEVERITIES):
        return {}
    result = imagenet_c_mce(accuracies)
    return {**{f"{split}/corruption_error_{t}": result[f"ce_{t}"] for t in sorted(types)},
            f"{split}/mean_corruption_error": result["mce"]}
