"""Selective prediction: abstain on the least confident examples.

Inputs are per-example ``confidence`` [N] (higher = keep first, e.g. the max probability)
and ``correct`` [N] (bool, 0/1). Examples with tied confidence are kept or dropped in random
order, and every result is the exact expectation over that order, so results never depend
on the order of the examples.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from uncertainty_baselines.metrics import _arrays

# Tolerance when turning a fraction into a count (0.3 * 10 = 3.0000000000000004 is 3).
_COUNT_TOL = 1e-9


def _inputs(confidence: Any, correct: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validated float64 confidence [N] and correctness [N] as 0.0/1.0 (N > 0)."""
    conf = _arrays.as_float_array(confidence, "confidence").astype(np.float64, copy=False)
    corr = _arrays.to_numpy(correct)
    if conf.ndim != 1 or corr.shape != conf.shape:
        raise ValueError(f"confidence shape {conf.shape} and correct shape {corr.shape} must "
                         "both be [N]")
    _arrays.check_not_empty(conf.size, "selective prediction")
    if corr.dtype != np.bool_ and not np.isin(corr, (0, 1)).all():
        raise ValueError("correct must be boolean or 0/1")
    return conf, corr.astype(np.float64)


def cumulative_correct(confidence: Any, correct: Any) -> np.ndarray:
    """Expected number of correct examples among the n most confident, for n = 0..N.

    Inside a group of tied confidences, examples enter in random order, so the expected
    count grows linearly across the group.
    """
    conf, corr = _inputs(confidence, correct)
    order = np.argsort(-conf, kind="stable")
    conf, corr = conf[order], corr[order]
    group_start = np.concatenate([[0], np.flatnonzero(np.diff(conf) != 0) + 1])
    group_end = np.concatenate([group_start[1:], [conf.size]])
    cum = np.concatenate([[0.0], np.cumsum(corr)])
    rate = (cum[group_end] - cum[group_start]) / (group_end - group_start)
    group_of = np.repeat(np.arange(group_start.size), group_end - group_start)
    position = np.arange(1, conf.size + 1) - group_start[group_of]
    return np.concatenate([[0.0], cum[group_start[group_of]] + position * rate[group_of]])


def risk_coverage_curve(confidence: Any, correct: Any) -> tuple[np.ndarray, np.ndarray]:
    """(coverage, risk) at every n = 1..N: coverage n/N, risk = error rate of the n most
    confident examples (Geifman & El-Yaniv 2017)."""
    cum = cumulative_correct(confidence, correct)
    n = np.arange(1, cum.size)
    return n / (cum.size - 1), 1 - cum[1:] / n


def aurc(confidence: Any, correct: Any) -> float:
    """Area under the risk-coverage curve: the mean of the risk over coverages n/N,
    n = 1..N (Geifman et al. 2019). Lower is better."""
    return float(risk_coverage_curve(confidence, correct)[1].mean())


def _count(fraction: float, total: int, name: str, round_up: bool) -> int:
    """ceil (round_up) or floor of fraction * total, forgiving float rounding."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"{name} must be in [0, 1], got {fraction}")
    exact = fraction * total
    return int(np.ceil(exact - _COUNT_TOL) if round_up else np.floor(exact + _COUNT_TOL))


def accuracy_at_coverage(confidence: Any, correct: Any, coverage: float) -> float:
    """Accuracy on the ceil(coverage * N) most confident examples (at least one)."""
    cum = cumulative_correct(confidence, correct)
    kept = max(1, _count(coverage, cum.size - 1, "coverage", round_up=True))
    return float(cum[kept] / kept)


def oracle_collaborative_accuracy(confidence: Any, correct: Any, review_fraction: float
                                  ) -> float:
    """Accuracy when the floor(review_fraction * N) least confident examples are sent to an
    oracle that labels them correctly (Kivlichan et al. 2021), exact (no binning)."""
    cum = cumulative_correct(confidence, correct)
    total = cum.size - 1
    reviewed = _count(review_fraction, total, "review_fraction", round_up=False)
    return float((cum[total - reviewed] + reviewed) / total)
