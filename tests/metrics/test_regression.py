"""Regression metrics against SciPy (densities, quadrature, normal intervals)."""
import numpy as np
import pytest
from scipy import integrate, stats

from uncertainty_baselines.metrics import (
    RegressionMetrics, central_interval, gaussian_crps, gaussian_nll, interval_coverage,
    interval_width, rmse)


def gaussians(n=40, m=None, seed=0):
    rng = np.random.default_rng(seed)
    shape = (n,) if m is None else (m, n)
    return rng.normal(size=shape), rng.uniform(0.5, 2, shape), rng.normal(size=n)


def numerical_crps(cdf, y, lo=-30, hi=30):
    below = integrate.quad(lambda x: cdf(x) ** 2, lo, y, limit=200)[0]
    above = integrate.quad(lambda x: (1 - cdf(x)) ** 2, y, hi, limit=200)[0]
    return below + above


def test_gaussian_against_scipy():
    mean, std, label = gaussians()
    np.testing.assert_allclose(gaussian_nll(mean, std, label),
                               -stats.norm.logpdf(label, mean, std))
    assert rmse(mean, label) == pytest.approx(np.sqrt(np.mean((mean - label) ** 2)))
    expected = [numerical_crps(stats.norm(m, s).cdf, y) for m, s, y in zip(mean[:5], std[:5],
                                                                            label[:5])]
    np.testing.assert_allclose(gaussian_crps(mean[:5], std[:5], label[:5]), expected, rtol=1e-6)
    lower, upper = stats.norm.interval(0.9, mean, std)
    np.testing.assert_allclose(central_interval(mean, std, 0.9), (lower, upper))
    assert interval_coverage(mean, std, label, 0.9) == np.mean((label >= lower) & (label <= upper))
    assert interval_width(mean, std, 0.9) == pytest.approx(np.mean(upper - lower))


def test_mixture_against_scipy():
    mean, std, label = gaussians(n=6, m=3, seed=1)
    density = np.mean([stats.norm.pdf(label, mean[i], std[i]) for i in range(3)], axis=0)
    np.testing.assert_allclose(gaussian_nll(mean, std, label), -np.log(density))
    for j in range(6):
        cdf = lambda x, j=j: np.mean(stats.norm.cdf(x, mean[:, j], std[:, j]))  # noqa: E731
        assert gaussian_crps(mean, std, label)[j] == pytest.approx(
            numerical_crps(cdf, label[j]), rel=1e-6)
        lower, upper = central_interval(mean, std, 0.8)
        assert cdf(lower[j]) == pytest.approx(0.1, abs=1e-9)
        assert cdf(upper[j]) == pytest.approx(0.9, abs=1e-9)
    assert rmse(mean, label) == pytest.approx(np.sqrt(np.mean((mean.mean(0) - label) ** 2)))
    single = gaussians(n=6, seed=2)
    np.testing.assert_allclose(gaussian_crps(*single), gaussian_crps(*(a[None] for a in single[:2]),
                                                                     single[2]))


def test_calibrated_gaussian_covers_its_level():
    rng = np.random.default_rng(3)
    mean, std = rng.normal(size=20_000), rng.uniform(0.5, 2, 20_000)
    label = mean + std * rng.normal(size=20_000)
    assert interval_coverage(mean, std, label) == pytest.approx(0.95, abs=0.005)


def test_streaming_equals_functions():
    mean, std, label = gaussians(n=30, m=2, seed=4)
    streamed = RegressionMetrics(level=0.9)
    for part in np.array_split(np.arange(30), 3):
        piece = RegressionMetrics(level=0.9)
        piece.add_batch(mean[:, part], std[:, part], label=label[part])
        streamed.merge(piece)
    assert streamed.result() == pytest.approx({
        "negative_log_likelihood": gaussian_nll(mean, std, label).mean(),
        "rmse": rmse(mean, label),
        "crps": gaussian_crps(mean, std, label).mean(),
        "interval_coverage": interval_coverage(mean, std, label, 0.9),
        "interval_width": interval_width(mean, std, 0.9),
    }, rel=1e-10)


def test_bad_input():
    mean, std, label = gaussians(n=3)
    with pytest.raises(ValueError, match="std must be positive; 1 of 3"):
        gaussian_nll(mean, np.array([1.0, 0.0, 1.0]), label)
    with pytest.raises(ValueError, match=r"label shape \(2,\)"):
        gaussian_crps(mean, std, label[:2])
    with pytest.raises(ValueError, match="level"):
        RegressionMetrics(level=95)
    with pytest.raises(ValueError, match="1 NaN"):
        gaussian_nll(mean, std, np.array([np.nan, 0.0, 1.0]))
    with pytest.raises(ValueError, match="no examples"):
        RegressionMetrics().result()
