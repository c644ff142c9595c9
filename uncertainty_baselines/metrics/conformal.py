"""Split-conformal prediction sets for classifiers: APS and RAPS, coverage and set size.

APS (Romano et al. 2020) scores a candidate label y of an example by the probability mass
ranked before it plus u times its own, u ~ U(0, 1) (randomized) or u = 1; RAPS
(Angelopoulos et al. 2021) adds lam * max(0, rank(y) - k_reg), penalising long tails. With
the threshold q = the ceil((n + 1)(1 - alpha))-th smallest true-label score of n
calibration examples, the set {y : score(x, y) <= q} holds the true label with probability
>= 1 - alpha for any test example exchangeable with the calibration ones (and at most
1 - alpha + 1 / (n + 1) with randomized scores, which are almost surely distinct). The
ranking breaks ties between equal probabilities by class index.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from uncertainty_baselines.metrics import _arrays

METHODS = ("aps", "raps")
# The paper's candidate penalties for RAPS' `lam` (Angelopoulos et al. 2021, "optimize size").
RAPS_LAMBDAS = (0.001, 0.01, 0.1, 0.2, 0.5)


def check_alpha(alpha: float) -> float:
    """`alpha` (the miscoverage, 1 - the coverage level) as a float in (0, 1), else ValueError."""
    try:
        alpha = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(f"the miscoverage alpha must be a number in (0, 1), got {alpha!r}") from None
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"the coverage level 1 - alpha must lie in (0, 1) (exclusive), got alpha = {alpha}")
    return alpha


def label_scores(probs: Any, u: Any, lam: float = 0.0, k_reg: int = 0) -> np.ndarray:
    """Conformity score [N, K] of every candidate label: the mass of the labels ranked
    before it + u * its probability + lam * max(0, rank - k_reg) (rank from 1).

    `u` [N] (one draw per example, shared by its labels) or a scalar (1: non-randomized).
    lam = 0 gives APS.
    """
    p = _arrays.as_probs(probs, from_logits=False).astype(np.float64, copy=False)
    n, k = p.shape
    if lam < 0 or k_reg < 0:
        raise ValueError(f"RAPS needs lam >= 0 and k_reg >= 0, got {lam} and {k_reg}")
    u = np.broadcast_to(np.asarray(u, np.float64), (n,))
    order = np.argsort(-p, axis=1, kind="stable")  # Descending; ties by class index.
    sorted_p = np.take_along_axis(p, order, axis=1)
    before = np.cumsum(sorted_p, axis=1) - sorted_p
    ranks = np.arange(1, k + 1)
    sorted_scores = before + u[:, None] * sorted_p + lam * np.maximum(0, ranks - k_reg)[None, :]
    scores = np.empty_like(sorted_scores)
    np.put_along_axis(scores, order, sorted_scores, axis=1)
    return scores


def conformal_threshold(scores: Any, alpha: float) -> float:
    """The split-conformal threshold: the ceil((n + 1)(1 - alpha))-th smallest of the n
    calibration scores, +inf when that exceeds n (too few examples for this level)."""
    alpha = check_alpha(alpha)
    s = _arrays.as_float_array(scores, "scores").reshape(-1)
    _arrays.check_not_empty(s.size, "conformal calibration")
    rank = math.ceil((s.size + 1) * (1.0 - alpha) - 1e-12)  # Guard 0.9 * 100 = 90.00000000000001.
    if rank > s.size:
        return math.inf
    return float(np.partition(s, rank - 1)[rank - 1])


def set_coverage(sets: Any, labels: Any) -> float:
    """Fraction of examples whose prediction set (bool [N, K]) holds their label."""
    sets = np.asarray(sets, bool)
    y = _arrays.as_labels(labels, sets.shape[0], sets.shape[1])
    _arrays.check_not_empty(sets.shape[0], "set coverage")
    return float(sets[np.arange(len(y)), y].mean())


def set_size(sets: Any) -> float:
    """Mean number of labels per prediction set (bool [N, K])."""
    sets = np.asarray(sets, bool)
    _arrays.check_not_empty(sets.shape[0], "set size")
    return float(sets.sum(axis=1).mean())


class SplitConformal:
    """APS or RAPS prediction sets at coverage level 1 - `alpha`, calibrated on held-out data.

    `calibrate(probs, labels)` sets `threshold`; `sets(probs)` gives bool [N, K] sets;
    `result(probs, labels)` {'coverage', 'set_size'} (for RAPS also `lam`, `k_reg`).
    `randomized` draws u ~ U(0, 1) per example from a generator seeded by `seed` (exact
    coverage in expectation); else u = 1 (conservative, never empty sets). RAPS' `lam` and
    `k_reg` default to `raps_parameters` on a first `tune_fraction` of the calibration data,
    the threshold then coming from the rest only (so the guarantee holds).
    """

    def __init__(self, alpha: float, method: str = "aps", *, randomized: bool = True, seed: int = 0,
                 lam: float | None = None, k_reg: int | None = None, tune_fraction: float = 0.2):
        if method not in METHODS:
            raise ValueError(f"unknown conformal method {method!r}; valid: {METHODS}")
        if not 0.0 < tune_fraction < 1.0:
            raise ValueError(f"tune_fraction must be in (0, 1), got {tune_fraction}")
        self.alpha = check_alpha(alpha)
        self.method, self.randomized, self.tune_fraction = method, randomized, tune_fraction
        self.lam = 0.0 if method == "aps" else lam
        self.k_reg = 0 if method == "aps" else k_reg
        self.threshold: float | None = None
        self._rng = np.random.default_rng(seed)

    def _u(self, n: int) -> np.ndarray | float:
        return self._rng.uniform(size=n) if self.randomized else 1.0

    def calibrate(self, probs: Any, labels: Any) -> SplitConformal:
        p = _arrays.as_probs(probs, from_logits=False)
        y = _arrays.as_labels(labels, p.shape[0], p.shape[1], probs_shape=p.shape)
        if self.method == "raps" and (self.lam is None or self.k_reg is None):
            n_tune = int(len(y) * self.tune_fraction)
            if n_tune < 1 or n_tune == len(y):
                raise ValueError(f"RAPS parameter tuning needs more than {len(y)} calibration examples")
            lam, k_reg = raps_parameters(p[:n_tune], y[:n_tune], self.alpha, randomized=self.randomized,
                                         seed=int(self._rng.integers(2**31)))
            self.lam = lam if self.lam is None else self.lam
            self.k_reg = k_reg if self.k_reg is None else self.k_reg
            p, y = p[n_tune:], y[n_tune:]
        scores = label_scores(p, self._u(len(y)), self.lam, self.k_reg)
        self.threshold = conformal_threshold(scores[np.arange(len(y)), y], self.alpha)
        return self

    def sets(self, probs: Any) -> np.ndarray:
        """Prediction sets, bool [N, K]."""
        if self.threshold is None:
            raise ValueError("call calibrate(probs, labels) on held-out data before predicting sets")
        p = _arrays.as_probs(probs, from_logits=False)
        return label_scores(p, self._u(p.shape[0]), self.lam, self.k_reg) <= self.threshold

    def result(self, probs: Any, labels: Any) -> dict[str, float]:
        sets = self.sets(probs)
        return {"coverage": set_coverage(sets, labels), "set_size": set_size(sets)}


def raps_parameters(probs: Any, labels: Any, alpha: float, lambdas: Sequence[float] = RAPS_LAMBDAS,
                    randomized: bool = True, seed: int = 0) -> tuple[float, int]:
    """RAPS' (lam, k_reg) chosen on tuning data as the paper's "optimize size": k_reg the
    conformal (1 - alpha) quantile of the true labels' ranks, lam the candidate whose sets,
    calibrated on the same data, are smallest on average."""
    alpha = check_alpha(alpha)
    p = _arrays.as_probs(probs, from_logits=False)
    y = _arrays.as_labels(labels, p.shape[0], p.shape[1], probs_shape=p.shape)
    true_p = p[np.arange(len(y)), y]
    # Rank under the same tie-break as label_scores: greater, or equal with a lower index.
    ranks = (p > true_p[:, None]).sum(axis=1) + ((p == true_p[:, None]) & (np.arange(p.shape[1]) < y[:, None])).sum(axis=1) + 1
    k_reg = int(min(conformal_threshold(ranks, alpha), p.shape[1]))
    rng = np.random.default_rng(seed)
    best = None
    for lam in lambdas:
        u = rng.uniform(size=len(y)) if randomized else 1.0
        scores = label_scores(p, u, lam, k_reg)
        size = set_size(scores <= conformal_threshold(scores[np.arange(len(y)), y], alpha))
        if best is None or size < best[0]:
            best = (size, float(lam))
    return best[1], k_reg
