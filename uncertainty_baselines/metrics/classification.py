"""Streaming classification metrics: accuracy, NLL, Brier and calibration errors.

Conventions (docs/metrics.md):
- Top-label: the confidence is the largest probability and the prediction its class
  (``argmax``, first index on ties). Binary inputs of shape [N] are p(y=1) and are expanded to
  two columns, so binary calibration is top-label too, never "p(y=1) against y".
- Equal-width bins on [0, 1]: confidence c lands in bin ``min(floor(c * B), B - 1)``, so
  c = 1.0 is in the last bin and c = k/B (as rounded in the input's dtype) is in bin k.
- Brier: sum over classes of (p_k - 1[y = k])^2, averaged over examples (range [0, 2]).
- NLL: mean of -log p(y), with p(y) floored at 2.2e-308 (exact from logits with
  ``from_logits=True``).
- Every streaming sum is accumulated in float64 whatever the input dtype: float32 sums of
  squares are off by ~1e-6 in the Brier score and depend on how examples are batched.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np
from scipy import special

from uncertainty_baselines.metrics import _arrays

# Large batches are accumulated in chunks of about this many entries (at least
# _CHUNK_MIN_ROWS rows, bounding the per-chunk Python overhead for many classes):
# cache-sized temporaries are several times faster than batch-sized ones.
_CHUNK_ENTRIES = 1 << 16
_CHUNK_MIN_ROWS = 4096


def bin_index(confidence: Any, num_bins: int) -> np.ndarray:
    """Equal-width bin of each confidence in [0, 1]: ``min(floor(c * B), B - 1)``, exactly.

    ``floor(c * B)`` is computed in floating point; wherever c lies within rounding error of
    an edge (c * B * (1 +- 4 eps) floor to different bins) it is re-checked against the
    edges ``k / B`` rounded to the input's dtype, so c = k/B always lands in bin k (e.g.
    1/49 * 49 < 1 in float64).
    """
    confidence = _arrays.to_float_array(confidence, "confidence")
    dtype = confidence.dtype.type
    tol = 4 * np.finfo(confidence.dtype).eps
    bins = (confidence * dtype(num_bins * (1 + tol))).astype(np.intp)
    np.minimum(bins, num_bins - 1, out=bins)
    below = (confidence * dtype(num_bins * (1 - tol))).astype(np.intp)
    near = np.flatnonzero(below != bins)
    if near.size:
        edges = (np.arange(num_bins + 1) / num_bins).astype(confidence.dtype)
        flat = bins.reshape(-1)
        exact = np.searchsorted(edges, confidence.reshape(-1)[near], side="right") - 1
        flat[near] = np.minimum(exact, num_bins - 1)
    return bins


def top_label(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(confidence, correct, p_true) for validated [N, K] probs and [N] labels.

    ``correct`` follows ``argmax`` (first index among tied maxima). For few classes the fast
    path compares p(y) with the row maximum and falls back to ``argmax`` only when a row has
    tied maxima.
    """
    n, k = probs.shape
    flat_true = np.arange(n) * k + labels
    p_true = probs.reshape(-1)[flat_true]
    if k > _arrays.COLUMN_LOOP_MAX_CLASSES:
        predictions = probs.argmax(axis=1)
        return probs[np.arange(n), predictions], predictions == labels, p_true
    conf = functools.reduce(np.maximum, probs.T)
    if np.count_nonzero(probs == conf[:, None]) == n:
        correct = p_true == conf
    else:
        correct = probs.argmax(axis=1) == labels
    return conf, correct, p_true


def classwise_gap(probs: np.ndarray, labels: np.ndarray, num_bins: int) -> np.ndarray:
    """Per class k and bin b (index k * B + b): sum of p_k - 1[y = k] over the examples whose
    p_k falls in bin b, for validated [N, K] probs and [N] labels.

    Most p_k of a confident classifier sit in bin 0, so only entries >= 1/B are binned; the
    bin-0 sums follow from the column sums (accumulated in float64, like every sum here).
    """
    n, k = probs.shape
    flat = probs.reshape(-1)
    high = np.flatnonzero(flat >= probs.dtype.type(1 / num_bins))
    high_class = high % k
    high_probs = flat[high]
    index = high_class * num_bins + bin_index(high_probs, num_bins)
    # float64 even when no p_k is binned (numpy gives an empty weighted bincount int64).
    sums = np.bincount(index, weights=high_probs, minlength=k * num_bins).astype(np.float64)
    sums[::num_bins] += (probs.sum(axis=0, dtype=np.float64)
                         - np.bincount(high_class, weights=high_probs, minlength=k))
    label_bins = bin_index(flat[np.arange(n) * k + labels], num_bins)
    return sums - np.bincount(labels * num_bins + label_bins, minlength=k * num_bins)


def _probs_and_nll(x: Any, labels: Any, num_classes: int | None, from_logits: bool
                   ) -> tuple[np.ndarray, np.ndarray, float]:
    """Validated probs [N, K], labels [N] and the summed NLL of one batch."""
    raw = _arrays.to_float_array(x, "probs")
    if from_logits:
        _arrays.check_finite(raw, "logits")
        logits = raw if raw.ndim != 1 else _arrays.binary_to_two_class(raw, True)
        if logits.ndim != 2:
            raise ValueError(f"logits must have shape [N, K] (or [N] for binary), got {raw.shape}")
        log_p = special.log_softmax(logits, axis=1)
        probs = np.exp(log_p)
    else:
        probs = np.ascontiguousarray(_arrays.as_probs(raw, from_logits=False))
    n, k = probs.shape
    if num_classes is not None and k != num_classes:
        raise ValueError(f"probs has {k} classes (shape {raw.shape}) but the metric was built "
                         f"with num_classes={num_classes}")
    labels = _arrays.as_labels(labels, n, k, probs_shape=raw.shape)
    if from_logits:
        nll = -float(log_p.reshape(-1)[np.arange(n) * k + labels].sum(dtype=np.float64))
    else:
        p_true = probs.reshape(-1)[np.arange(n) * k + labels]
        nll = -float(np.log(np.maximum(p_true, _arrays.MIN_PROB)).sum())
    return probs, labels, nll


class ClassificationMetrics:
    """Accuracy, NLL, Brier, ECE, MCE, RMS calibration error and classwise ECE in one pass.

    Memory is O(num_bins x num_classes) whatever the number of examples, and partial states
    from replicas or hosts combine exactly (up to float summation order) with ``merge``.

    ``result()`` keys: ``accuracy``, ``negative_log_likelihood``, ``brier``, ``ece``
    (top-label, sum_b n_b/N |acc_b - conf_b|), ``mce`` (max over non-empty bins of
    |acc_b - conf_b|), ``rmsce`` (sqrt(sum_b n_b/N (acc_b - conf_b)^2)) and ``classwise_ece``
    (mean over classes k of the ECE of p_k against 1[y = k], Kull et al. 2019). Adaptive
    (equal-mass) ECE needs every confidence: see :class:`AdaptiveCalibrationError`.
    """

    def __init__(self, num_classes: int | None = None, num_bins: int = 15,
                 from_logits: bool = False):
        if num_bins < 1:
            raise ValueError(f"num_bins must be a positive integer, got {num_bins}")
        if num_classes is not None and num_classes < 2:
            raise ValueError(f"num_classes must be at least 2 (or None), got {num_classes}")
        self.num_classes = num_classes
        self.num_bins = num_bins
        self.from_logits = from_logits
        self.reset()

    def reset(self) -> None:
        """Forgets every example added so far (keeps the settings)."""
        self._count = 0
        self._correct = 0
        self._nll_sum = 0.0
        self._brier_sum = 0.0
        self._bin_count = np.zeros(self.num_bins, np.int64)
        self._bin_conf = np.zeros(self.num_bins)
        self._bin_correct = np.zeros(self.num_bins, np.int64)
        # Per class and bin: sum of (p_k - 1[y = k]); allocated once K is known.
        self._classwise_gap = (None if self.num_classes is None
                               else np.zeros(self.num_classes * self.num_bins))

    def add_batch(self, probs: Any, label: Any) -> None:
        """Adds predictions [N, K] (or [N] = p(y=1) for binary) with integer labels [N]."""
        probs, labels, nll = _probs_and_nll(probs, label, self.num_classes, self.from_logits)
        n, k = probs.shape
        if self.num_classes is None:
            self.num_classes = k
            self._classwise_gap = np.zeros(k * self.num_bins)
        if n == 0:
            return
        self._count += n
        self._nll_sum += nll
        rows = max(_CHUNK_MIN_ROWS, _CHUNK_ENTRIES // k)
        for start in range(0, n, rows):
            self._add_chunk(probs[start:start + rows], labels[start:start + rows])

    def _add_chunk(self, probs: np.ndarray, labels: np.ndarray) -> None:
        """Accumulates every sum except count and NLL for validated probs and labels."""
        n, k = probs.shape
        conf, correct, p_true = top_label(probs, labels)
        flat = probs.reshape(-1).astype(np.float64, copy=False)
        self._correct += int(np.count_nonzero(correct))
        self._brier_sum += (float(np.einsum("i,i->", flat, flat))
                            - 2 * float(p_true.sum(dtype=np.float64)) + n)
        bins = bin_index(conf, self.num_bins)
        self._bin_count += np.bincount(bins, minlength=self.num_bins)
        self._bin_conf += np.bincount(bins, weights=conf, minlength=self.num_bins)
        self._bin_correct += np.bincount(bins[correct], minlength=self.num_bins)
        self._classwise_gap += classwise_gap(probs, labels, self.num_bins)

    def merge(self, other: ClassificationMetrics) -> None:
        """Adds the state of ``other`` (same settings) to this one."""
        _arrays.check_same_type(self, other, ("num_classes", "num_bins", "from_logits"))
        if other._classwise_gap is None:
            return
        if self._classwise_gap is None:
            self.num_classes = other.num_classes
            self._classwise_gap = np.zeros_like(other._classwise_gap)
        self._count += other._count
        self._correct += other._correct
        self._nll_sum += other._nll_sum
        self._brier_sum += other._brier_sum
        self._bin_count += other._bin_count
        self._bin_conf += other._bin_conf
        self._bin_correct += other._bin_correct
        self._classwise_gap += other._classwise_gap

    def result(self) -> dict[str, float]:
        """The metrics over every example added (ValueError if there were none)."""
        _arrays.check_not_empty(self._count, type(self).__name__)
        n = self._count
        gap = self._bin_correct - self._bin_conf
        nonempty = self._bin_count > 0
        bin_gap = np.abs(gap[nonempty]) / self._bin_count[nonempty]
        return {
            "accuracy": self._correct / n,
            "negative_log_likelihood": self._nll_sum / n,
            "brier": self._brier_sum / n,
            "ece": float(np.abs(gap).sum() / n),
            "mce": float(bin_gap.max()),
            "rmsce": float(np.sqrt((gap[nonempty] ** 2 / self._bin_count[nonempty]).sum() / n)),
            "classwise_ece": float(np.abs(self._classwise_gap).sum() / (n * self.num_classes)),
        }

    def reliability_diagram(self) -> dict[str, np.ndarray]:
        """Per-bin data of the top-label reliability diagram.

        Keys: ``bin_edges`` [B + 1], ``count`` [B], ``accuracy`` [B] and ``confidence`` [B]
        (mean accuracy and confidence of each bin; NaN for empty bins).
        """
        _arrays.check_not_empty(self._count, type(self).__name__)
        count = self._bin_count.copy()
        with np.errstate(invalid="ignore", divide="ignore"):
            accuracy = np.where(count > 0, self._bin_correct / count, np.nan)
            confidence = np.where(count > 0, self._bin_conf / count, np.nan)
        return {"bin_edges": np.arange(self.num_bins + 1) / self.num_bins, "count": count,
                "accuracy": accuracy, "confidence": confidence}


class AdaptiveCalibrationError:
    """Adaptive (equal-mass) top-label ECE (Nguyen & O'Connor 2015; Nixon et al. 2019).

    Examples are sorted by confidence (ties ordered by correctness, so the result does not
    depend on example order) and split into ``num_bins`` bins whose sizes differ by at most
    one; ECE = sum_b n_b/N |acc_b - conf_b|. It keeps every confidence (O(N) memory), which
    is why it is not part of :class:`ClassificationMetrics`. ``result()`` key:
    ``adaptive_ece``.
    """

    def __init__(self, num_bins: int = 15, from_logits: bool = False):
        if num_bins < 1:
            raise ValueError(f"num_bins must be a positive integer, got {num_bins}")
        self.num_bins = num_bins
        self.from_logits = from_logits
        self.num_classes: int | None = None
        self.reset()

    def reset(self) -> None:
        """Forgets every example added so far."""
        self._conf: list[np.ndarray] = []
        self._correct: list[np.ndarray] = []

    def add_batch(self, probs: Any, label: Any) -> None:
        """Adds predictions [N, K] (or [N] = p(y=1) for binary) with integer labels [N]."""
        probs, labels, _ = _probs_and_nll(probs, label, self.num_classes, self.from_logits)
        self.num_classes = probs.shape[1]
        conf, correct, _ = top_label(probs, labels)
        self._conf.append(conf.astype(np.float64))
        self._correct.append(correct)

    def merge(self, other: AdaptiveCalibrationError) -> None:
        """Adds the examples of ``other`` (same settings) to this one."""
        _arrays.check_same_type(self, other, ("num_classes", "num_bins", "from_logits"))
        self.num_classes = self.num_classes or other.num_classes
        self._conf.extend(other._conf)
        self._correct.extend(other._correct)

    def result(self) -> dict[str, float]:
        """{'adaptive_ece': ...} over every example added (ValueError if there were none)."""
        conf = np.concatenate(self._conf) if self._conf else np.zeros(0)
        _arrays.check_not_empty(conf.size, type(self).__name__)
        correct = np.concatenate(self._correct)
        order = np.lexsort((correct, conf))
        cumulative_gap = np.concatenate([[0.0], np.cumsum(correct[order] - conf[order])])
        sizes = np.full(self.num_bins, conf.size // self.num_bins)
        sizes[: conf.size % self.num_bins] += 1
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        gaps = cumulative_gap[bounds[1:]] - cumulative_gap[bounds[:-1]]
        return {"adaptive_ece": float(np.abs(gaps).sum() / conf.size)}
