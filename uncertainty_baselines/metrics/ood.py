"""Out-of-distribution detection: scores and exact rank-based detection metrics.

Every score is "higher = more likely out-of-distribution". AUROC, AUPR and FPR at 95% TPR
are computed exactly from sorted scores (no fixed threshold grid): the reference suite's
100,000 thresholds round scores and can differ in the third decimal.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

from uncertainty_baselines.metrics import _arrays
from uncertainty_baselines.metrics.ensemble import entropy, mutual_information

SCORE_KINDS = ("msp", "entropy", "max_logit", "energy", "dempster_shafer",
               "mutual_information")
LOGIT_SCORE_KINDS = ("max_logit", "energy", "dempster_shafer")


def ood_score(x: Any, kind: str = "msp", from_logits: bool = False) -> np.ndarray:
    """Per-example OOD score (higher = more likely OOD) from probabilities or logits.

    Kinds: ``msp`` 1 - max probability (Hendrycks & Gimpel 2017); ``entropy`` of the
    predictive distribution; ``max_logit`` -max logit; ``energy`` -logsumexp(logits) (Liu et
    al. 2020, T = 1); ``dempster_shafer`` K / (K + sum exp(logits)) (Sensoy et al. 2018, as
    in SNGP); ``mutual_information`` between label and member for member predictions of
    shape [M, N, K] (MC samples or ensemble members). ``max_logit``, ``energy`` and
    ``dempster_shafer`` need logits (``from_logits=True``); the others take either.
    """
    if kind not in SCORE_KINDS:
        raise ValueError(f"unknown OOD score kind {kind!r}; valid kinds: {SCORE_KINDS}")
    if kind in LOGIT_SCORE_KINDS and not from_logits:
        raise ValueError(f"OOD score {kind!r} needs logits: pass logits with from_logits=True")
    if kind == "mutual_information":
        return mutual_information(x, from_logits=from_logits)
    arr = _arrays.as_float_array(x, "logits" if from_logits else "probs")
    if arr.ndim != 2:
        raise ValueError(f"OOD score {kind!r} needs an array of shape [N, K], got {arr.shape}")
    if kind == "max_logit":
        return -arr.max(axis=1)
    if kind == "energy":
        return -special.logsumexp(arr, axis=1)
    if kind == "dempster_shafer":
        k = arr.shape[1]
        return k / (k + np.exp(special.logsumexp(arr, axis=1)))
    probs = _arrays.as_probs(arr, from_logits)
    if kind == "msp":
        return 1 - probs.max(axis=1)
    return entropy(probs)


def _binary_inputs(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validated float64 scores [N] and boolean labels [N] holding both classes."""
    s = _arrays.as_float_array(scores, "scores").astype(np.float64, copy=False)
    y = _arrays.to_numpy(labels)
    if s.ndim != 1 or y.shape != s.shape:
        raise ValueError(f"scores shape {s.shape} and labels shape {y.shape} must both be [N]")
    if y.dtype != np.bool_:
        if not np.isin(y, (0, 1)).all():
            raise ValueError("labels must be boolean or 0/1 (1 = positive class)")
        y = y.astype(bool)
    num_pos = int(np.count_nonzero(y))
    if num_pos == 0 or num_pos == y.size:
        raise ValueError(
            f"the evaluation set must hold both classes; got {num_pos} positives and "
            f"{y.size - num_pos} negatives")
    return s, y


def _threshold_counts(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(true positives, false positives) when predicting positive for score >= t, for every
    distinct score t from the highest to the lowest (tied scores enter together, so the
    order inside a tie group is irrelevant)."""
    order = np.argsort(scores)[::-1]
    s, y = scores[order], labels[order]
    ends = np.concatenate([np.flatnonzero(s[1:] != s[:-1]), [s.size - 1]])
    tp = np.cumsum(y)[ends]
    return tp, (ends + 1) - tp


def _swap_classes(tp: np.ndarray, fp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The counts of :func:`_threshold_counts` for negated scores and swapped labels."""
    new_tp = np.cumsum(np.diff(fp, prepend=0)[::-1])
    new_fp = np.cumsum(np.diff(tp, prepend=0)[::-1])
    return new_tp, new_fp


def _auroc(tp: np.ndarray, fp: np.ndarray) -> float:
    """Trapezoidal area under the ROC curve through the threshold counts (and 0, 0)."""
    tp = np.concatenate([[0], tp]).astype(np.float64)
    fp = np.concatenate([[0], fp]).astype(np.float64)
    return float(np.dot(np.diff(fp), tp[1:] + tp[:-1]) / 2 / (tp[-1] * fp[-1]))


def _average_precision(tp: np.ndarray, fp: np.ndarray) -> float:
    """Step-wise average precision: sum over thresholds of (R_t - R_t-1) P_t."""
    recall_gain = np.diff(tp, prepend=0) / tp[-1]
    return float(np.dot(recall_gain, tp / (tp + fp)))


def _fpr_at_tpr(tp: np.ndarray, fp: np.ndarray, tpr: float) -> float:
    """FP/N at the first (highest) threshold with TP/P >= tpr."""
    if not 0 < tpr <= 1:
        raise ValueError(f"tpr must be in (0, 1], got {tpr}")
    return float(fp[int(np.argmax(tp / tp[-1] >= tpr))] / fp[-1])


def auroc(scores: Any, labels: Any) -> float:
    """Exact area under the ROC curve, positives = ``labels`` true, higher score = positive.

    Equals P(score of a random positive > score of a random negative) + 0.5 P(tie): tied
    scores get half credit (the trapezoid through tied thresholds; Mann-Whitney U / PN).
    ValueError if only one class is present.
    """
    return _auroc(*_threshold_counts(*_binary_inputs(scores, labels)))


def average_precision(scores: Any, labels: Any) -> float:
    """Area under the precision-recall curve as average precision (step-wise, no
    interpolation): sum over distinct thresholds of (R_t - R_t-1) P_t, matching
    ``sklearn.metrics.average_precision_score``. Positives = ``labels`` true."""
    return _average_precision(*_threshold_counts(*_binary_inputs(scores, labels)))


def fpr_at_tpr(scores: Any, labels: Any, tpr: float = 0.95) -> float:
    """False-positive rate at the highest threshold whose true-positive rate is >= ``tpr``.

    Convention: predict positive when score >= t; t is the largest distinct score with
    TP/P >= tpr (tied scores are all included, no interpolation), and the result is FP/N at
    that t. Positives = ``labels`` true.
    """
    return _fpr_at_tpr(*_threshold_counts(*_binary_inputs(scores, labels)), tpr)


def _roc_points(tp: np.ndarray, fp: np.ndarray, max_points: int | None
                ) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) through (0, 0) and the threshold counts, thinned to at most `max_points`."""
    if max_points is not None:
        if max_points < 2:
            raise ValueError(f"max_points must be at least 2, got {max_points}")
        if tp.size + 1 > max_points:
            # Vertices at evenly spaced numbers of examples flagged positive (the last always
            # kept): a curve through them is within about 1/max_points of the exact one.
            flagged = tp + fp
            targets = np.linspace(0, flagged[-1], max_points - 1)[1:]
            keep = np.unique(np.concatenate([np.searchsorted(flagged, targets), [tp.size - 1]]))
            tp, fp = tp[keep], fp[keep]
    tpr = np.concatenate([[0.0], tp / tp[-1]])
    fpr = np.concatenate([[0.0], fp / fp[-1]])
    return fpr, tpr


def roc_curve(scores: Any, labels: Any, max_points: int | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """The exact ROC curve (false-positive rate, true-positive rate), positives = ``labels``
    true, predicting positive when score >= t for every distinct score t from the highest
    down, starting at (0, 0) and ending at (1, 1). Its trapezoid area is :func:`auroc`.

    ``max_points`` keeps at most that many vertices (at evenly spaced numbers of examples
    flagged positive, the first and last always kept), for a record small enough to plot.
    """
    return _roc_points(*_threshold_counts(*_binary_inputs(scores, labels)), max_points)


class OODMetrics:
    """Streaming AUROC, AUPR-in, AUPR-out and FPR at 95% TPR for an OOD score.

    ``add_batch(score, is_ood=...)`` takes scores with higher = more likely OOD (see
    :func:`ood_score`). ``positive`` names the positive class: ``'ood'`` (default) or
    ``'in'``. AUROC is the same either way; ``fpr_at_95_tpr`` is the fraction of the
    negative class accepted as positive when 95% of the positive class is detected (with
    the default, the fraction of in-distribution examples flagged OOD at 95% OOD recall).
    ``aupr_out`` is the average precision with OOD positive (score as is) and ``aupr_in``
    with in-distribution positive (score negated); both are always reported. Keeps every
    score (rank-based metrics are O(N)); ``merge`` concatenates.
    """

    def __init__(self, positive: str = "ood"):
        if positive not in ("ood", "in"):
            raise ValueError(f"positive must be 'ood' or 'in', got {positive!r}")
        self.positive = positive
        self.reset()

    def reset(self) -> None:
        """Forgets every score added so far."""
        self._scores: list[np.ndarray] = []
        self._is_ood: list[np.ndarray] = []

    def add_batch(self, score: Any, is_ood: Any) -> None:
        """Adds OOD scores [N] with flags [N] (true/1 = out-of-distribution)."""
        s = _arrays.as_float_array(score, "score").astype(np.float64)
        flags = _arrays.to_numpy(is_ood)
        if s.ndim != 1 or flags.shape != s.shape:
            raise ValueError(f"score shape {s.shape} and is_ood shape {flags.shape} must both "
                             "be [N]")
        if flags.dtype != np.bool_ and not np.isin(flags, (0, 1)).all():
            raise ValueError("is_ood must be boolean or 0/1 (1 = out-of-distribution)")
        self._scores.append(s)
        self._is_ood.append(flags.astype(bool))

    def merge(self, other: OODMetrics) -> None:
        """Adds the scores of ``other`` (same positive class) to this one."""
        _arrays.check_same_type(self, other, ("positive",))
        self._scores.extend(other._scores)
        self._is_ood.extend(other._is_ood)

    def result(self) -> dict[str, float]:
        """{'auroc', 'aupr_in', 'aupr_out', 'fpr_at_95_tpr'} over every score added."""
        scores = np.concatenate(self._scores) if self._scores else np.zeros(0)
        _arrays.check_not_empty(scores.size, type(self).__name__)
        is_ood = np.concatenate(self._is_ood)
        ood_counts = _threshold_counts(*_binary_inputs(scores, is_ood))  # one sort for all
        in_counts = _swap_classes(*ood_counts)
        positive_counts = ood_counts if self.positive == "ood" else in_counts
        return {
            "auroc": _auroc(*positive_counts),
            "aupr_in": _average_precision(*in_counts),
            "aupr_out": _average_precision(*ood_counts),
            "fpr_at_95_tpr": _fpr_at_tpr(*positive_counts, 0.95),
        }

    def roc_curve(self, max_points: int | None = None) -> dict[str, np.ndarray]:
        """The ROC curve of every score added ({'fpr', 'tpr'}, see :func:`roc_curve`), the
        positive class being ``positive``."""
        scores = np.concatenate(self._scores) if self._scores else np.zeros(0)
        _arrays.check_not_empty(scores.size, type(self).__name__)
        is_ood = np.concatenate(self._is_ood)
        counts = _threshold_counts(*_binary_inputs(scores, is_ood))
        if self.positive == "in":
            counts = _swap_classes(*counts)
        fpr, tpr = _roc_points(*counts, max_points)
        return {"fpr": fpr, "tpr": tpr}
