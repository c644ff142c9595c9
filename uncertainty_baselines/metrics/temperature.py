"""Temperature scaling (Guo et al. 2017): one scalar T, fit on held-out logits."""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy import optimize, special

from uncertainty_baselines.metrics import _arrays

# Search range of the inverse temperature 1/T; the NLL is convex in 1/T.
_MIN_INVERSE_TEMPERATURE = 1e-3
_MAX_INVERSE_TEMPERATURE = 1e3


def _logits_and_labels(logits: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validated float64 logits [N, K] (N > 0) and integer labels [N]."""
    z = _arrays.as_float_array(logits, "logits").astype(np.float64, copy=False)
    if z.ndim != 2:
        raise ValueError(f"logits must have shape [N, K], got {z.shape}")
    _arrays.check_not_empty(z.shape[0], "temperature scaling")
    y = _arrays.as_labels(labels, z.shape[0], z.shape[1], probs_shape=z.shape)
    return z, y


def _mean_nll(logits: np.ndarray, labels: np.ndarray, inverse_temperature: float) -> float:
    """Mean NLL of softmax(logits * inverse_temperature)."""
    scaled = logits * inverse_temperature
    true_logit = scaled[np.arange(len(labels)), labels]
    return float(np.mean(special.logsumexp(scaled, axis=1) - true_logit))


def fit_temperature(logits: Any, labels: Any) -> float:
    """The temperature T > 0 minimising the mean NLL of softmax(logits / T) on held-out data.

    The NLL is convex in 1/T, so a bounded scalar search over 1/T in [1e-3, 1e3] finds the
    global minimum. ValueError if it lies on a bound (e.g. perfectly separated logits, for
    which the NLL keeps falling as T -> 0).
    """
    z, y = _logits_and_labels(logits, labels)
    fit = optimize.minimize_scalar(
        lambda beta: _mean_nll(z, y, beta), method="bounded",
        bounds=(_MIN_INVERSE_TEMPERATURE, _MAX_INVERSE_TEMPERATURE),
        options={"xatol": 1e-9})
    beta = float(fit.x)
    if not fit.success or min(beta - _MIN_INVERSE_TEMPERATURE,
                              _MAX_INVERSE_TEMPERATURE - beta) < 1e-6 * beta:
        raise ValueError(
            f"temperature fit reached the edge of 1/T in [{_MIN_INVERSE_TEMPERATURE}, "
            f"{_MAX_INVERSE_TEMPERATURE}] (1/T = {beta:.4g}): the held-out logits are "
            "perfectly separated or carry no information")
    return 1.0 / beta


def apply_temperature(logits: Any, temperature: float) -> np.ndarray:
    """Calibrated probabilities softmax(logits / temperature) of logits [..., K]."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    z = _arrays.as_float_array(logits, "logits")
    return special.softmax(z / temperature, axis=-1)
