"""roc_curve and OODMetrics.roc_curve: exact against scikit-learn, thinning bounded."""
import numpy as np
import pytest
from sklearn import metrics as skm

from uncertainty_baselines.metrics import OODMetrics, auroc, roc_curve


def scores_and_labels(n, seed, decimals=None):
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.3
    labels[:2] = [True, False]
    scores = rng.normal(size=n) + labels
    return (np.round(scores, decimals) if decimals is not None else scores), labels


@pytest.mark.parametrize("decimals", [None, 1])  # 1 decimal: many tied scores
def test_exact_curve_is_sklearns_and_its_area_is_the_auroc(decimals):
    scores, labels = scores_and_labels(2000, seed=3, decimals=decimals)
    fpr, tpr = roc_curve(scores, labels)
    want_fpr, want_tpr, _ = skm.roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, want_fpr, atol=1e-15)
    np.testing.assert_allclose(tpr, want_tpr, atol=1e-15)
    assert np.trapezoid(tpr, fpr) == pytest.approx(auroc(scores, labels), abs=1e-12)


def test_thinned_curve_keeps_ends_stays_monotone_and_close():
    scores, labels = scores_and_labels(20_000, seed=4)
    fpr, tpr = roc_curve(scores, labels, max_points=101)
    assert len(fpr) <= 101 and len(fpr) > 50
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    exact_fpr, exact_tpr = roc_curve(scores, labels)
    # Every kept point is a vertex of the exact curve, and the area moves by < 1/100.
    exact = set(zip(exact_fpr.tolist(), exact_tpr.tolist()))
    assert all(p in exact for p in zip(fpr.tolist(), tpr.tolist()))
    assert abs(np.trapezoid(tpr, fpr) - auroc(scores, labels)) < 0.01


def test_ood_metrics_curve_with_either_positive_class():
    scores, is_ood = scores_and_labels(500, seed=5)
    m = OODMetrics()
    m.add_batch(scores[:200], is_ood=is_ood[:200])
    m.add_batch(scores[200:], is_ood=is_ood[200:])
    curve = m.roc_curve()
    np.testing.assert_allclose(curve["tpr"], roc_curve(scores, is_ood)[1])
    m_in = OODMetrics(positive="in")
    m_in.add_batch(scores, is_ood=is_ood)
    fpr_in, tpr_in = roc_curve(-scores, ~is_ood)
    np.testing.assert_allclose(m_in.roc_curve()["fpr"], fpr_in)
    np.testing.assert_allclose(m_in.roc_curve()["tpr"], tpr_in)
    assert np.trapezoid(m_in.roc_curve()["tpr"], m_in.roc_curve()["fpr"]) == pytest.approx(
        m_in.result()["auroc"])


def test_bad_input():
    with pytest.raises(ValueError, match="both classes"):
        roc_curve([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="max_points"):
        roc_curve([0.1, 0.2], [1, 0], max_points=1)
    with pytest.raises(ValueError, match="empty|no example|nothing"):
        OODMetrics().roc_curve()
