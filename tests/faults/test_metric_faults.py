"""Fault injection on the metrics: float32 inputs, reordered batches, NaN and inf values.

Probabilities on a 2^-16 grid are exact in float32, their squares are multiples of 2^-32,
so every float64 partial sum over fewer than 2^21 of them is exact: float64 accumulation
then gives the exact value in any order, while float32 accumulation rounds. The NLL (a sum
of logarithms) is never exact, so it is compared to rounding error only.
"""
from fractions import Fraction

import numpy as np
import pytest
from scipy import special

from uncertainty_baselines.metrics import (
    AdaptiveCalibrationError, ClassificationMetrics, EnsembleMetrics, OODMetrics,
    RegressionMetrics)

GRID = 2**16


def confident_grid_predictions(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer counts [N, K] summing to GRID per row (top class > 99%) and labels [N]
    (90% the top class): p = counts / GRID, where Brier's sum of squares nearly cancels."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 100, (n, k))
    top = rng.integers(0, k, n)
    counts[np.arange(n), top] = 0
    counts[np.arange(n), top] = GRID - counts.sum(axis=1)
    labels = np.where(rng.random(n) < 0.9, top, rng.integers(0, k, n))
    return counts, labels


def exact_brier(counts: np.ndarray, labels: np.ndarray) -> float:
    """The Brier score of counts / GRID, in integer arithmetic, rounded once to float."""
    n = len(labels)
    total = (int((counts.astype(np.int64) ** 2).sum())
             - 2 * GRID * int(counts[np.arange(n), labels].sum()) + n * GRID**2)
    return float(Fraction(total, GRID**2 * n))


N, K = 40_000, 10
COUNTS, LABELS = confident_grid_predictions(N, K, seed=0)
PROBS32 = (COUNTS / GRID).astype(np.float32)
SHUFFLED = np.random.default_rng(1).permutation(N)


def classification(probs: np.ndarray, order: np.ndarray, batch_size: int = 10_000):
    metric = ClassificationMetrics()
    for start in range(0, N, batch_size):
        rows = order[start:start + batch_size]
        metric.add_batch(probs[rows], LABELS[rows])
    return metric.result()


def test_grid_probabilities_are_exact_in_float32():
    assert np.array_equal(PROBS32.astype(np.float64) * GRID, COUNTS)


def test_float32_brier_is_the_exact_value():
    # float32 sums of p^2 and p(y) were off by 5e-6 here (the terms cancel to 0.18).
    assert classification(PROBS32, np.arange(N))["brier"] == exact_brier(COUNTS, LABELS)


def test_float32_inputs_give_the_float64_results():
    float32 = classification(PROBS32, np.arange(N))
    float64 = classification(PROBS32.astype(np.float64), np.arange(N))
    assert float32 == float64


def test_example_order_and_batch_size_do_not_change_the_results():
    first = classification(PROBS32, np.arange(N))
    for order, batch_size in ((SHUFFLED, 10_000), (np.arange(N)[::-1], 3_000), (SHUFFLED, N)):
        again = classification(PROBS32, order, batch_size)
        assert again["negative_log_likelihood"] == pytest.approx(
            first["negative_log_likelihood"], rel=1e-14)
        del again["negative_log_likelihood"]
        assert again == {k: v for k, v in first.items() if k != "negative_log_likelihood"}


def test_float32_logits_nll_is_summed_in_float64():
    rng = np.random.default_rng(2)
    logits = (rng.standard_normal((100_000, 3)) * 4).astype(np.float32)
    labels = rng.integers(0, 3, len(logits))
    metric = ClassificationMetrics(from_logits=True)
    metric.add_batch(logits, labels)
    log_p = special.log_softmax(logits, axis=1)[np.arange(len(labels)), labels]
    assert log_p.dtype == np.float32
    expected = -float(np.sum(log_p.astype(np.float64))) / len(labels)
    assert metric.result()["negative_log_likelihood"] == pytest.approx(expected, rel=1e-12)


def test_adaptive_ece_ignores_dtype_and_example_order():
    def adaptive(probs, order):
        metric = AdaptiveCalibrationError()
        for start in range(0, N, 7_000):
            rows = order[start:start + 7_000]
            metric.add_batch(probs[rows], LABELS[rows])
        return metric.result()

    first = adaptive(PROBS32, np.arange(N))
    assert first == adaptive(PROBS32, SHUFFLED) == adaptive(PROBS32.astype(np.float64), SHUFFLED)


def test_ensemble_metrics_ignore_the_input_dtype():
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((4, 5_000, K)).astype(np.float32)
    labels = rng.integers(0, K, 5_000)
    results = []
    for dtype in (np.float32, np.float64):
        metric = EnsembleMetrics(from_logits=True)
        metric.add_batch(logits.astype(dtype), labels)
        results.append(metric.result())
    assert results[0] == results[1]


def test_regression_metrics_ignore_the_input_dtype():
    rng = np.random.default_rng(4)
    mean = rng.standard_normal((3, 5_000)).astype(np.float32)
    std = rng.uniform(0.5, 2.0, (3, 5_000)).astype(np.float32)
    label = rng.standard_normal(5_000).astype(np.float32)
    results = []
    for dtype in (np.float32, np.float64):
        metric = RegressionMetrics()
        metric.add_batch(mean.astype(dtype), std.astype(dtype), label.astype(dtype))
        results.append(metric.result())
    assert results[0] == results[1]


def with_bad_values(arr: np.ndarray, num_nan: int, num_inf: int) -> np.ndarray:
    """A float copy of ``arr`` with its first entries set to NaN, then to +inf."""
    out = np.array(arr, dtype=np.float64)
    flat = out.reshape(-1)
    flat[:num_nan] = np.nan
    flat[num_nan:num_nan + num_inf] = np.inf
    return out


PROBS = np.full((4, 3), 1 / 3)
Y = np.array([0, 1, 2, 0])


@pytest.mark.parametrize("make,args,bad,name", [
    (ClassificationMetrics, (with_bad_values(PROBS, 2, 1), Y), 0, "probs"),
    (lambda: ClassificationMetrics(from_logits=True), (with_bad_values(PROBS, 1, 2), Y), 0,
     "logits"),
    (ClassificationMetrics, (PROBS, with_bad_values(Y, 1, 0)), 1, "labels"),
    (AdaptiveCalibrationError, (with_bad_values(PROBS, 3, 0), Y), 0, "probs"),
    (EnsembleMetrics, (with_bad_values(np.stack([PROBS, PROBS]), 2, 2), Y), 0, "member_probs"),
    (RegressionMetrics, (with_bad_values(np.zeros(4), 1, 1), np.ones(4), np.zeros(4)), 0,
     "mean"),
    (RegressionMetrics, (np.zeros(4), np.ones(4), with_bad_values(np.zeros(4), 2, 0)), 2,
     "label"),
    (OODMetrics, (with_bad_values(np.zeros(4), 1, 1), np.array([0, 1, 0, 1])), 0, "score"),
])
def test_nan_and_inf_inputs_raise_with_counts(make, args, bad, name):
    values = args[bad]
    message = (f"{name} contains {int(np.isnan(values).sum())} NaN and "
               f"{int(np.isinf(values).sum())} infinite values out of {values.size}")
    with pytest.raises(ValueError, match=message):
        make().add_batch(*args)
