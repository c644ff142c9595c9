"""OOD scores and exact AUROC / AUPR / FPR95 against scikit-learn, SciPy and by hand."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats
from sklearn import metrics as skm

from uncertainty_baselines.metrics import (
    OODMetrics, auroc, average_precision, fpr_at_tpr, ood_score)


def scores_and_labels(n, seed, decimals=None):
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.3
    labels[:2] = [True, False]
    scores = rng.normal(size=n) + labels
    return (np.round(scores, decimals) if decimals is not None else scores), labels


@pytest.mark.parametrize("decimals", [None, 1])  # 1 decimal: many ties
def test_rank_metrics_match_sklearn(decimals):
    scores, labels = scores_and_labels(1000, seed=0, decimals=decimals)
    assert auroc(scores, labels) == pytest.approx(skm.roc_auc_score(labels, scores), abs=1e-12)
    assert average_precision(scores, labels) == pytest.approx(
        skm.average_precision_score(labels, scores), abs=1e-12)
    fpr, tpr, _ = skm.roc_curve(labels, scores, drop_intermediate=False)
    expected = fpr[np.argmax(tpr >= 0.95)]
    assert fpr_at_tpr(scores, labels, 0.95) == pytest.approx(expected)


def test_auroc_is_mann_whitney_u():
    scores, labels = scores_and_labels(300, seed=1, decimals=1)
    u = stats.mannwhitneyu(scores[labels], scores[~labels]).statistic
    assert auroc(scores, labels) == pytest.approx(u / labels.sum() / (~labels).sum())


def test_ties_get_half_credit_and_hand_cases():
    assert auroc([1.0, 1.0, 1.0, 1.0], [1, 0, 1, 0]) == 0.5  # all ties
    assert auroc([0.0, 1.0, 1.0], [0, 1, 0]) == pytest.approx(0.75)  # 1 win + 1 tie of 2
    assert auroc([3.0, 2.0, 1.0], [1, 1, 0]) == 1.0
    assert average_precision([3.0, 2.0, 1.0], [1, 0, 1]) == pytest.approx((1 + 2 / 3) / 2)
    # Threshold 2 gives TPR 1/2 < 0.95; threshold 1 gives TPR 1 with FPR 2/2.
    assert fpr_at_tpr([3.0, 2.0, 1.0, 1.0], [1, 0, 1, 0]) == 1.0
    assert fpr_at_tpr([3.0, 2.0, 1.0, 0.0], [1, 1, 0, 0]) == 0.0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(-5, 5), st.booleans()), min_size=2, max_size=40))
def test_auroc_properties(pairs):
    scores = np.array([float(s) for s, _ in pairs])
    labels = np.array([y for _, y in pairs])
    if labels.all() or not labels.any():
        with pytest.raises(ValueError, match="both classes"):
            auroc(scores, labels)
        return
    value = auroc(scores, labels)
    assert 0 <= value <= 1
    assert auroc(-scores, labels) == pytest.approx(1 - value)
    assert auroc(scores, ~labels) == pytest.approx(1 - value)
    perm = np.random.default_rng(len(pairs)).permutation(len(pairs))
    assert auroc(scores[perm], labels[perm]) == pytest.approx(value)
    assert average_precision(scores, labels) == pytest.approx(
        skm.average_precision_score(labels, scores))


@pytest.mark.parametrize("decimals", [None, 1])
def test_streaming_ood_metrics_conventions(decimals):
    scores, is_ood = scores_and_labels(400, seed=2, decimals=decimals)
    streamed = OODMetrics()
    for part in np.array_split(np.arange(400), 3):
        piece = OODMetrics()
        piece.add_batch(scores[part], is_ood=is_ood[part])
        streamed.merge(piece)
    result = streamed.result()
    assert result["auroc"] == pytest.approx(skm.roc_auc_score(is_ood, scores))
    assert result["aupr_out"] == pytest.approx(skm.average_precision_score(is_ood, scores))
    assert result["aupr_in"] == pytest.approx(skm.average_precision_score(~is_ood, -scores))
    fpr, tpr, _ = skm.roc_curve(is_ood, scores, drop_intermediate=False)
    assert result["fpr_at_95_tpr"] == pytest.approx(fpr[np.argmax(tpr >= 0.95)])
    in_positive = OODMetrics(positive="in")
    in_positive.add_batch(scores, is_ood=is_ood)
    flipped = in_positive.result()
    fpr, tpr, _ = skm.roc_curve(~is_ood, -scores, drop_intermediate=False)
    assert flipped["fpr_at_95_tpr"] == pytest.approx(fpr[np.argmax(tpr >= 0.95)])
    assert flipped["auroc"] == pytest.approx(result["auroc"])
    assert flipped["aupr_in"] == result["aupr_in"] and flipped["aupr_out"] == result["aupr_out"]


def test_ood_metrics_refuse_bad_sets():
    only_in = OODMetrics()
    only_in.add_batch([0.1, 0.2], is_ood=[False, False])
    with pytest.raises(ValueError, match="0 positives and 2 negatives"):
        only_in.result()
    with pytest.raises(ValueError, match="no examples"):
        OODMetrics().result()
    with pytest.raises(ValueError, match="is_ood shape"):
        OODMetrics().add_batch([0.1, 0.2], is_ood=[True])
    with pytest.raises(ValueError, match="1 NaN"):
        OODMetrics().add_batch([np.nan, 0.2], is_ood=[True, False])
    with pytest.raises(ValueError, match="'ood' or 'in'"):
        OODMetrics(positive="out")


def test_score_kinds_by_hand():
    logits = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    probs = special.softmax(logits, axis=1)
    np.testing.assert_allclose(ood_score(probs, "msp"), 1 - probs.max(1))
    np.testing.assert_allclose(ood_score(logits, "msp", from_logits=True), 1 - probs.max(1))
    np.testing.assert_allclose(ood_score(probs, "entropy"), stats.entropy(probs, axis=1))
    np.testing.assert_allclose(ood_score(logits, "max_logit", from_logits=True), [-2.0, 0.0])
    np.testing.assert_allclose(ood_score(logits, "energy", from_logits=True),
                               -np.log(np.exp(logits).sum(1)))
    np.testing.assert_allclose(ood_score(logits, "dempster_shafer", from_logits=True),
                               3 / (3 + np.exp(logits).sum(1)))
    members = np.stack([probs, probs[::-1]])  # two members that disagree
    mean = members.mean(0)
    expected_mi = stats.entropy(mean, axis=1) - stats.entropy(members, axis=2).mean(0)
    np.testing.assert_allclose(ood_score(members, "mutual_information"), expected_mi)
    with pytest.raises(ValueError, match="needs logits"):
        ood_score(probs, "energy")
    with pytest.raises(ValueError, match="valid kinds"):
        ood_score(probs, "odin")
