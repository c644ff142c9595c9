"""ub.metrics conformal prediction sets: hand-computed scores, the coverage guarantee on
exchangeable data over many draws, and refused input."""
import math

import numpy as np
import pytest
from scipy import special

from uncertainty_baselines.metrics import conformal


def test_scores_by_hand():
    probs = np.array([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]])
    # Non-randomized APS: mass ranked before the label plus the label's own.
    np.testing.assert_allclose(conformal.label_scores(probs, 1.0), [[0.5, 0.8, 1.0], [1.0, 0.6, 0.9]])
    # Randomized: u times the label's own mass; RAPS adds lam per rank beyond k_reg.
    np.testing.assert_allclose(conformal.label_scores(probs, np.array([0.5, 0.0])),
                               [[0.25, 0.65, 0.9], [0.9, 0.0, 0.6]])
    np.testing.assert_allclose(conformal.label_scores(probs, 1.0, lam=0.1, k_reg=1),
                               [[0.5, 0.9, 1.2], [1.2, 0.6, 1.0]])
    # Ties are ranked by class index: [0.4, 0.4, 0.2] puts class 0 first.
    np.testing.assert_allclose(conformal.label_scores([[0.4, 0.4, 0.2]], 1.0), [[0.4, 0.8, 1.0]])


def test_threshold_is_the_conformal_order_statistic():
    scores = np.arange(1, 11) / 10.0  # n = 10
    assert conformal.conformal_threshold(scores, 0.2) == 0.9  # ceil(11 * 0.8) = 9th smallest
    assert conformal.conformal_threshold(scores, 0.5) == 0.6  # ceil(5.5) = 6
    assert conformal.conformal_threshold(scores, 1 / 11) == 1.0  # ceil(10) = 10, despite float rounding
    assert conformal.conformal_threshold(scores, 0.05) == math.inf  # ceil(10.45) = 11 > n


def synthetic(rng, n, k=5):
    """Exchangeable (x, y) with a miscalibrated classifier: y ~ softmax(z), the model says softmax(2 z)."""
    z = rng.normal(size=(n, k)) * 1.5
    y = (rng.uniform(size=(n, 1)) > np.cumsum(special.softmax(z, axis=1), axis=1)).sum(axis=1)
    return special.softmax(2 * z, axis=1), np.minimum(y, k - 1)


@pytest.mark.parametrize("method,randomized", [("aps", True), ("aps", False), ("raps", True)])
def test_coverage_at_least_nominal_over_many_draws(method, randomized):
    """E[coverage] >= 1 - alpha (and <= 1 - alpha + 1/(n+1) with randomized scores) over
    1,000 calibration/test draws; the Monte Carlo standard error is ~0.001."""
    rng = np.random.default_rng(0)
    alpha, n_cal, n_test = 0.1, 100, 100
    coverages, sizes = [], []
    for draw in range(1000):
        probs, labels = synthetic(rng, n_cal + n_test)
        cp = conformal.SplitConformal(alpha, method, randomized=randomized, seed=draw,
                                      **({"lam": 0.05, "k_reg": 2} if method == "raps" else {}))
        cp.calibrate(probs[:n_cal], labels[:n_cal])
        result = cp.result(probs[n_cal:], labels[n_cal:])
        coverages.append(result["coverage"])
        sizes.append(result["set_size"])
    mean, se = np.mean(coverages), np.std(coverages) / np.sqrt(len(coverages))
    assert mean >= 1 - alpha - 3 * se, (mean, se)
    if randomized:
        assert mean <= 1 - alpha + 1 / (n_cal + 1) + 3 * se, (mean, se)
    assert 1 < np.mean(sizes) < 5  # Informative sets, not the trivial full set.


def test_tuned_raps_keeps_coverage_and_its_tuning_split_is_not_calibration():
    rng = np.random.default_rng(1)
    coverages = []
    for draw in range(300):
        probs, labels = synthetic(rng, 600)
        cp = conformal.SplitConformal(0.1, "raps", seed=draw).calibrate(probs[:300], labels[:300])
        assert cp.lam in conformal.RAPS_LAMBDAS and 1 <= cp.k_reg <= 5
        coverages.append(cp.result(probs[300:], labels[300:])["coverage"])
    assert np.mean(coverages) >= 0.9 - 3 * np.std(coverages) / np.sqrt(300)


def test_too_few_calibration_examples_give_full_sets():
    probs, labels = synthetic(np.random.default_rng(2), 15)
    cp = conformal.SplitConformal(0.05, "aps").calibrate(probs[:5], labels[:5])
    assert cp.threshold == math.inf and conformal.set_size(cp.sets(probs[5:])) == 5


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1, 1.5, float("nan"), "x"])
def test_coverage_level_outside_open_unit_interval_refused(alpha):
    with pytest.raises(ValueError, match=r"must (lie in|be a number in) \(0, 1\)"):
        conformal.SplitConformal(alpha)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        conformal.conformal_threshold([0.1, 0.2], alpha)


def test_other_bad_input_refused():
    with pytest.raises(ValueError, match="unknown conformal method"):
        conformal.SplitConformal(0.1, "lac")
    with pytest.raises(ValueError, match="call calibrate"):
        conformal.SplitConformal(0.1).sets([[0.5, 0.5]])
    with pytest.raises(ValueError, match="if these are logits"):
        conformal.SplitConformal(0.1).calibrate([[2.0, -1.0]], [0])
