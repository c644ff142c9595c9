"""Metrics over the members of an ensemble or the samples of a stochastic model.

Inputs are member predictions of shape [M, N, K] (M members or samples, N examples, K
classes), probabilities by default or logits with ``from_logits=True``. Per-example
functions return arrays of shape [N]; :class:`EnsembleMetrics` streams their means.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

from uncertainty_baselines.metrics import _arrays


def entropy(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) along the last axis, with 0 log 0 = 0."""
    return -special.xlogy(probs, probs).sum(axis=-1)


def log_mean_exp(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """log(mean(exp(x))) along ``axis``, computed stably (log-sum-exp minus log M)."""
    return special.logsumexp(x, axis=axis) - np.log(x.shape[axis])


def member_log_probs(member_probs: Any, from_logits: bool = False) -> np.ndarray:
    """Validated member log-probabilities [M, N, K] (probabilities floored at 2.2e-308)."""
    arr = _arrays.as_float_array(member_probs, "member_probs")
    if arr.ndim != 3:
        raise ValueError(f"member predictions must have shape [M, N, K], got {arr.shape}")
    return _arrays.log_probs(arr.astype(np.float64, copy=False), from_logits, "member_probs")


def _true_class_log_probs(log_p: np.ndarray, labels: Any) -> np.ndarray:
    """log p_m(y_n) of shape [M, N]."""
    m, n, k = log_p.shape
    y = _arrays.as_labels(labels, n, k, probs_shape=log_p.shape)
    return log_p[:, np.arange(n), y]


def ensemble_nll(member_probs: Any, labels: Any, from_logits: bool = False) -> np.ndarray:
    """Per-example NLL of the ensemble's mean prediction: -log mean_m p_m(y)."""
    log_p = member_log_probs(member_probs, from_logits)
    return -log_mean_exp(_true_class_log_probs(log_p, labels), axis=0)


def gibbs_nll(member_probs: Any, labels: Any, from_logits: bool = False) -> np.ndarray:
    """Per-example Gibbs NLL: the members' mean NLL, -mean_m log p_m(y)."""
    log_p = member_log_probs(member_probs, from_logits)
    return -_true_class_log_probs(log_p, labels).mean(axis=0)


def predictive_entropy(member_probs: Any, from_logits: bool = False) -> np.ndarray:
    """Per-example entropy (nats) of the mean prediction, H[mean_m p_m]."""
    probs = np.exp(member_log_probs(member_probs, from_logits))
    return entropy(probs.mean(axis=0))


def mutual_information(member_probs: Any, from_logits: bool = False) -> np.ndarray:
    """Per-example mutual information between label and member (epistemic uncertainty):
    H[mean_m p_m] - mean_m H[p_m], >= 0 (clipped at 0 against rounding)."""
    probs = np.exp(member_log_probs(member_probs, from_logits))
    mi = entropy(probs.mean(axis=0)) - entropy(probs).mean(axis=0)
    return np.maximum(mi, 0.0)


def disagreement(member_probs: Any, from_logits: bool = False) -> np.ndarray:
    """Per-example fraction of member pairs whose top-1 predictions differ (argmax, first
    index on ties), averaged over the M(M-1)/2 pairs; 0 for a single member."""
    return _pairwise_disagreement(member_log_probs(member_probs, from_logits))


def _pairwise_disagreement(log_p: np.ndarray) -> np.ndarray:
    """:func:`disagreement` of validated member log-probabilities [M, N, K]."""
    m, n, k = log_p.shape
    if m < 2:
        return np.zeros(n)
    votes = np.zeros((n, k))
    np.add.at(votes, (np.tile(np.arange(n), m), log_p.argmax(axis=2).reshape(-1)), 1)
    agreeing_pairs = (votes * (votes - 1) / 2).sum(axis=1)
    return 1 - agreeing_pairs / (m * (m - 1) / 2)


class EnsembleMetrics:
    """Streaming means of the ensemble metrics over member predictions [M, N, K].

    ``result()`` keys: ``ensemble_negative_log_likelihood``, ``gibbs_negative_log_likelihood``,
    ``disagreement``, ``predictive_entropy`` and ``mutual_information`` (means over examples).
    Accuracy and calibration of the ensemble come from feeding the mean prediction to
    :class:`~uncertainty_baselines.metrics.ClassificationMetrics`.
    """

    _KEYS = ("ensemble_negative_log_likelihood", "gibbs_negative_log_likelihood",
             "disagreement", "predictive_entropy", "mutual_information")

    def __init__(self, from_logits: bool = False):
        self.from_logits = from_logits
        self.reset()

    def reset(self) -> None:
        """Forgets every example added so far."""
        self._count = 0
        self._sums = dict.fromkeys(self._KEYS, 0.0)

    def add_batch(self, member_probs: Any, label: Any) -> None:
        """Adds member predictions [M, N, K] with integer labels [N]."""
        log_p = member_log_probs(member_probs, self.from_logits)
        true_log_p = _true_class_log_probs(log_p, label)
        probs = np.exp(log_p)
        pred_entropy = entropy(probs.mean(axis=0))
        values = {
            "ensemble_negative_log_likelihood": -log_mean_exp(true_log_p, axis=0),
            "gibbs_negative_log_likelihood": -true_log_p.mean(axis=0),
            "disagreement": _pairwise_disagreement(log_p),
            "predictive_entropy": pred_entropy,
            "mutual_information": np.maximum(pred_entropy - entropy(probs).mean(axis=0), 0.0),
        }
        self._count += log_p.shape[1]
        for key, value in values.items():
            self._sums[key] += float(value.sum())

    def merge(self, other: EnsembleMetrics) -> None:
        """Adds the state of ``other`` to this one."""
        _arrays.check_same_type(self, other, ("from_logits",))
        self._count += other._count
        for key in self._KEYS:
            self._sums[key] += other._sums[key]

    def result(self) -> dict[str, float]:
        """Means over every example added (ValueError if there were none)."""
        _arrays.check_not_empty(self._count, type(self).__name__)
        return {key: total / self._count for key, total in self._sums.items()}
