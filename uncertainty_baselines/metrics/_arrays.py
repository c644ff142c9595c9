"""Input conversion and validation shared by every metric.

Metrics accept NumPy, TensorFlow, JAX and torch arrays without importing any framework:
everything goes through :func:`to_numpy`. Validation errors are ``ValueError`` messages that
name what is wrong and what would be valid.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np
from scipy import special

# Rows of a probability matrix may deviate from summing to 1 by this much (float16/float32
# softmax rounding); anything further off is treated as "not probabilities".
PROB_SUM_ATOL = 1e-3
# NLL floors p(y) at the smallest normal float64 so a confidently wrong prediction costs at
# most -log(2.2e-308) ~ 708 instead of inf (use from_logits=True for the exact value).
MIN_PROB = np.finfo(np.float64).tiny
# Up to this many classes, row-wise reductions loop over columns (elementwise ufuncs on
# [N] vectors), several times faster than NumPy's reduction along a short last axis.
COLUMN_LOOP_MAX_CLASSES = 32


def to_numpy(x: Any) -> np.ndarray:
    """Converts a NumPy/TF/JAX/torch array (or nested list) to a NumPy array without copying
    when possible; torch tensors are detached and moved to the CPU first."""
    if hasattr(x, "detach"):  # torch.Tensor
        x = x.detach().cpu()
        try:
            return x.numpy()
        except TypeError:  # dtypes NumPy lacks, e.g. torch.bfloat16
            return x.float().numpy()
    return np.asarray(x)


def to_float_array(x: Any, name: str) -> np.ndarray:
    """``x`` as float32 or float64 (other numeric dtypes become float64), unchecked."""
    arr = to_numpy(x)
    if arr.dtype not in (np.float32, np.float64):
        if arr.dtype.kind not in "fiub" and "float" not in arr.dtype.name:  # bfloat16 is "V"
            raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
        arr = arr.astype(np.float64)
    return arr


def as_float_array(x: Any, name: str) -> np.ndarray:
    """``x`` as float32 or float64 (other dtypes become float64), after checking it is finite."""
    arr = to_float_array(x, name)
    check_finite(arr, name)
    return arr


def check_finite(arr: np.ndarray, name: str) -> None:
    """Raises ValueError with the number of NaN and infinite entries, if there are any."""
    if arr.size and not np.isfinite(arr.min() + arr.max()):  # cheap test; NaN/inf propagate
        num_nan = int(np.count_nonzero(np.isnan(arr)))
        num_inf = int(np.count_nonzero(np.isinf(arr)))
        raise ValueError(
            f"{name} contains {num_nan} NaN and {num_inf} infinite values out of {arr.size}")


def as_labels(labels: Any, num_examples: int, num_classes: int | None, name: str = "labels",
              probs_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Integer class labels of shape [num_examples] in [0, num_classes), as intp."""
    arr = to_numpy(labels)
    if arr.ndim != 1 or arr.shape[0] != num_examples:
        against = f"probs shape {probs_shape}" if probs_shape is not None else "predictions"
        raise ValueError(
            f"{name} shape {arr.shape} does not match {against}: expected integer labels of "
            f"shape ({num_examples},)")
    if arr.dtype.kind not in "iub":
        arr_f = as_float_array(arr, name)
        if np.any(arr_f != np.round(arr_f)):
            raise ValueError(f"{name} must be integer class indices, got non-integer values")
        arr = arr_f
    arr = arr.astype(np.intp, copy=False)
    if arr.size and num_classes is not None:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= num_classes:
            bad = int(np.count_nonzero((arr < 0) | (arr >= num_classes)))
            raise ValueError(
                f"{name} must lie in [0, {num_classes - 1}] for {num_classes} classes; "
                f"{bad} values are outside (min {lo}, max {hi})")
    return arr


def as_probs(x: Any, from_logits: bool, name: str = "probs") -> np.ndarray:
    """A probability matrix [N, K] from probabilities or logits.

    A 1-D input is binary: the probability (or logit) of class 1, expanded to [N, 2] so
    every metric uses the top-label definition. Without ``from_logits`` the input must lie
    in [0, 1] and rows must sum to 1 within ``PROB_SUM_ATOL``.
    """
    arr = to_float_array(x, name)
    if arr.ndim == 1:
        arr = binary_to_two_class(arr, from_logits)
    elif arr.ndim != 2:
        raise ValueError(f"{name} must have shape [N, K] (or [N] for binary), got {arr.shape}")
    if from_logits:
        check_finite(arr, name)
        return special.softmax(arr, axis=1)
    check_probabilities(arr, name)
    return arr


def binary_to_two_class(arr: np.ndarray, from_logits: bool) -> np.ndarray:
    """[N] p(y=1) (or its logit) -> [N, 2] two-class probabilities (or logits [0, z])."""
    if from_logits:
        return np.stack([np.zeros_like(arr), arr], axis=1)
    return np.stack([1 - arr, arr], axis=1)


def check_probabilities(arr: np.ndarray, name: str) -> None:
    """Raises ValueError unless ``arr`` [N, K] holds finite rows of probabilities."""
    if not arr.size:
        return
    lo, hi = arr.min(), arr.max()
    if not np.isfinite(lo + hi):
        check_finite(arr, name)
    if lo < 0 or hi > 1:
        raise ValueError(
            f"{name} must lie in [0, 1] (got min {lo:.4g}, max {hi:.4g}); if these are logits, "
            "pass from_logits=True (or apply a softmax first)")
    row_sums = row_sum(arr)
    worst = np.abs(row_sums - 1).max()
    if worst > PROB_SUM_ATOL:
        raise ValueError(
            f"each row of {name} must sum to 1 within {PROB_SUM_ATOL} (worst row is off by "
            f"{worst:.4g}); if these are logits, pass from_logits=True (or apply a softmax "
            "first)")


def row_sum(arr: np.ndarray) -> np.ndarray:
    """Sum of each row of [N, K] (no BLAS matvec: it spawns threads on a shared machine)."""
    if arr.shape[1] <= COLUMN_LOOP_MAX_CLASSES:
        return functools.reduce(np.add, arr.T)
    return arr.sum(axis=1)


def log_probs(x: Any, from_logits: bool, name: str = "probs") -> np.ndarray:
    """Log-probabilities [..., K]: exact log-softmax of logits, or log of floored probs."""
    arr = to_float_array(x, name)
    if from_logits:
        check_finite(arr, name)
        return special.log_softmax(arr, axis=-1)
    check_probabilities(arr.reshape(-1, arr.shape[-1]), name)
    return np.log(np.maximum(arr, MIN_PROB))


def check_not_empty(count: int, what: str) -> None:
    """Raises ValueError for an evaluation that saw no examples (never report a silent 0)."""
    if count == 0:
        raise ValueError(f"{what} has no examples: call add_batch with at least one example "
                         "before result()")


def check_same_type(metric: Any, other: Any, attrs: tuple[str, ...]) -> None:
    """Raises ValueError unless ``other`` is the same metric class with the same settings."""
    if type(other) is not type(metric):
        raise ValueError(f"cannot merge {type(other).__name__} into {type(metric).__name__}")
    for attr in attrs:
        mine, theirs = getattr(metric, attr), getattr(other, attr)
        if mine is not None and theirs is not None and mine != theirs:
            raise ValueError(f"cannot merge {type(metric).__name__} with {attr}={theirs} into "
                             f"one with {attr}={mine}")
