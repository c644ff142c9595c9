"""Metrics of Gaussian predictive distributions (UCI regression).

``mean`` and ``std`` have shape [N] for one Gaussian per example, or [M, N] for an
equal-weight mixture of M Gaussians per example (ensemble members, MC-dropout samples);
``label`` has shape [N]. Everything is in the units of the labels: undo target
standardisation before calling (NLL changes by log of the scale).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

from uncertainty_baselines.metrics import _arrays
from uncertainty_baselines.metrics.ensemble import log_mean_exp

_BISECTION_STEPS = 100


def _inputs(mean: Any, std: Any, label: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated float64 mean and std [M, N] and label [N]."""
    mu = _arrays.as_float_array(mean, "mean").astype(np.float64, copy=False)
    sigma = _arrays.as_float_array(std, "std").astype(np.float64, copy=False)
    y = _arrays.as_float_array(label, "label").astype(np.float64, copy=False)
    if mu.shape != sigma.shape or mu.ndim not in (1, 2) or y.ndim != 1 or \
            mu.shape[-1] != y.shape[0]:
        raise ValueError(f"mean shape {mu.shape} and std shape {sigma.shape} must be equal, "
                         f"[N] or [M, N], with N matching label shape {y.shape}")
    if sigma.size and sigma.min() <= 0:
        raise ValueError(f"std must be positive; {int(np.count_nonzero(sigma <= 0))} of "
                         f"{sigma.size} values are <= 0")
    return np.atleast_2d(mu), np.atleast_2d(sigma), y


def gaussian_nll(mean: Any, std: Any, label: Any) -> np.ndarray:
    """Per-example negative log-likelihood of ``label`` [N].

    One Gaussian: 0.5 log(2 pi std^2) + (label - mean)^2 / (2 std^2). A mixture [M, N]:
    -log mean_m N(label; mean_m, std_m^2), computed with log-mean-exp.
    """
    mu, sigma, y = _inputs(mean, std, label)
    z = (y - mu) / sigma
    member_log_pdf = -0.5 * z**2 - np.log(sigma) - 0.5 * np.log(2 * np.pi)
    return -log_mean_exp(member_log_pdf, axis=0)


def predictive_mean(mean: Any) -> np.ndarray:
    """Mean of the predictive distribution [N]: ``mean`` itself, or the members' average."""
    mu = _arrays.as_float_array(mean, "mean")
    return mu if mu.ndim == 1 else mu.mean(axis=0)


def rmse(mean: Any, label: Any) -> float:
    """Root mean squared error of the predictive mean (members averaged for [M, N])."""
    mu = predictive_mean(mean)
    y = _arrays.as_float_array(label, "label")
    if mu.shape != y.shape:
        raise ValueError(f"mean shape {np.shape(mean)} does not match label shape {y.shape}")
    _arrays.check_not_empty(y.size, "rmse")
    return float(np.sqrt(np.mean((mu - y) ** 2)))


def _crps_term(mu: np.ndarray, var: np.ndarray) -> np.ndarray:
    """E|X| for X ~ N(mu, var): 2 sigma phi(mu/sigma) + mu (2 Phi(mu/sigma) - 1)."""
    sigma = np.sqrt(var)
    z = mu / sigma
    return 2 * sigma * np.exp(-0.5 * z**2) / np.sqrt(2 * np.pi) + mu * (2 * special.ndtr(z) - 1)


def gaussian_crps(mean: Any, std: Any, label: Any) -> np.ndarray:
    """Per-example continuous ranked probability score (lower is better), closed form.

    One Gaussian: std [z (2 Phi(z) - 1) + 2 phi(z) - 1/sqrt(pi)], z = (label - mean) / std
    (Gneiting & Raftery 2007). Mixture: E|X - y| - E|X - X'| / 2 over members (Grimit et
    al. 2006).
    """
    mu, sigma, y = _inputs(mean, std, label)
    var = sigma**2
    to_label = _crps_term(y - mu, var).mean(axis=0)
    between = _crps_term(mu[:, None] - mu[None], var[:, None] + var[None]).mean(axis=(0, 1))
    return to_label - between / 2


def _check_level(level: float) -> None:
    """Raises ValueError unless the interval level is a probability strictly inside (0, 1)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")


def central_interval(mean: Any, std: Any, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) of the central ``level`` interval, per example: mean -+ z std for one
    Gaussian; for a mixture, its quantiles (1 -+ level) / 2 found by bisection."""
    _check_level(level)
    mu, sigma, _ = _inputs(mean, std, np.zeros(np.shape(mean)[-1]))
    if mu.shape[0] == 1:
        half = special.ndtri((1 + level) / 2) * sigma[0]
        return mu[0] - half, mu[0] + half
    return (_mixture_quantile(mu, sigma, (1 - level) / 2),
            _mixture_quantile(mu, sigma, (1 + level) / 2))


def _mixture_quantile(mu: np.ndarray, sigma: np.ndarray, q: float) -> np.ndarray:
    """q-quantile of each equal-weight Gaussian mixture (column) by bisection."""
    z = special.ndtri(q)
    lo, hi = (mu + z * sigma).min(axis=0), (mu + z * sigma).max(axis=0)  # brackets it
    for _ in range(_BISECTION_STEPS):
        mid = (lo + hi) / 2
        below = special.ndtr((mid - mu) / sigma).mean(axis=0) < q
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return (lo + hi) / 2


def interval_coverage(mean: Any, std: Any, label: Any, level: float = 0.95) -> float:
    """Fraction of labels inside the central ``level`` prediction interval (bounds
    included; about ``level`` for a calibrated model)."""
    y = _arrays.as_float_array(label, "label")
    lower, upper = central_interval(mean, std, level)
    if y.shape != lower.shape:
        raise ValueError(f"label shape {y.shape} does not match predictions {np.shape(mean)}")
    _arrays.check_not_empty(y.size, "interval_coverage")
    return float(np.mean((y >= lower) & (y <= upper)))


def interval_width(mean: Any, std: Any, level: float = 0.95) -> float:
    """Mean width of the central ``level`` prediction interval (2 z std for one Gaussian)."""
    lower, upper = central_interval(mean, std, level)
    _arrays.check_not_empty(lower.size, "interval_width")
    return float(np.mean(upper - lower))


class RegressionMetrics:
    """Streaming NLL, RMSE, CRPS and central-interval coverage and width.

    ``add_batch(mean, std, label=...)`` with [N] (Gaussian) or [M, N] (mixture) predictions.
    ``result()`` keys: ``negative_log_likelihood``, ``rmse``, ``crps``,
    ``interval_coverage`` and ``interval_width`` (at ``level``, default 0.95).
    """

    def __init__(self, level: float = 0.95):
        _check_level(level)
        self.level = level
        self.reset()

    def reset(self) -> None:
        """Forgets every example added so far."""
        self._count = 0
        self._sums = {"negative_log_likelihood": 0.0, "squared_error": 0.0, "crps": 0.0,
                      "interval_coverage": 0.0, "interval_width": 0.0}

    def add_batch(self, mean: Any, std: Any, label: Any) -> None:
        """Adds predictive means and standard deviations ([N] or [M, N]) with labels [N]."""
        mu, sigma, y = _inputs(mean, std, label)
        if y.size == 0:
            return
        lower, upper = central_interval(mu, sigma, self.level)
        self._count += y.size
        self._sums["negative_log_likelihood"] += float(gaussian_nll(mu, sigma, y).sum())
        self._sums["squared_error"] += float(((mu.mean(axis=0) - y) ** 2).sum())
        self._sums["crps"] += float(gaussian_crps(mu, sigma, y).sum())
        self._sums["interval_coverage"] += float(np.count_nonzero((y >= lower) & (y <= upper)))
        self._sums["interval_width"] += float((upper - lower).sum())

    def merge(self, other: RegressionMetrics) -> None:
        """Adds the state of ``other`` (same level) to this one."""
        _arrays.check_same_type(self, other, ("level",))
        self._count += other._count
        for key, value in other._sums.items():
            self._sums[key] += value

    def result(self) -> dict[str, float]:
        """Means over every example added (RMSE over squared errors; ValueError if empty)."""
        _arrays.check_not_empty(self._count, type(self).__name__)
        n = self._count
        return {
            "negative_log_likelihood": self._sums["negative_log_likelihood"] / n,
            "rmse": float(np.sqrt(self._sums["squared_error"] / n)),
            "crps": self._sums["crps"] / n,
            "interval_coverage": self._sums["interval_coverage"] / n,
            "interval_width": self._sums["interval_width"] / n,
        }
