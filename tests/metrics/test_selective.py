"""Selective prediction against brute force over every tie-breaking order."""
import itertools

import numpy as np
import pytest

from uncertainty_baselines.metrics import (
    accuracy_at_coverage, aurc, oracle_collaborative_accuracy, risk_coverage_curve)


def naive_risks(confidence, correct):
    order = np.argsort(-np.asarray(confidence), kind="stable")
    errors = 1 - np.asarray(correct, float)[order]
    return np.cumsum(errors) / np.arange(1, len(order) + 1)


def test_no_ties_matches_naive_definition():
    rng = np.random.default_rng(0)
    confidence = rng.random(200)
    correct = rng.random(200) < confidence
    coverage, risk = risk_coverage_curve(confidence, correct)
    np.testing.assert_allclose(risk, naive_risks(confidence, correct))
    np.testing.assert_allclose(coverage, np.arange(1, 201) / 200)
    assert aurc(confidence, correct) == pytest.approx(naive_risks(confidence, correct).mean())
    top_half = np.argsort(-confidence)[:100]
    assert accuracy_at_coverage(confidence, correct, 0.5) == pytest.approx(correct[top_half].mean())
    bottom_tenth = np.argsort(confidence)[:20]
    expected = (correct.sum() - correct[bottom_tenth].sum() + 20) / 200
    assert oracle_collaborative_accuracy(confidence, correct, 0.1) == pytest.approx(expected)


def test_ties_are_the_expectation_over_orders():
    confidence = np.array([0.9, 0.5, 0.5, 0.5, 0.2, 0.2])
    correct = np.array([1, 0, 1, 1, 0, 1])
    tie_orders = [np.array([0, *a, *b]) for a in itertools.permutations([1, 2, 3])
                  for b in itertools.permutations([4, 5])]
    risks = np.mean([np.cumsum(1 - correct[o]) / np.arange(1, 7) for o in tie_orders], axis=0)
    np.testing.assert_allclose(risk_coverage_curve(confidence, correct)[1], risks)
    assert aurc(confidence, correct) == pytest.approx(risks.mean())
    # Coverage 0.5 keeps 3: the 0.9 and two of the tied three (expected 2/3 correct each).
    assert accuracy_at_coverage(confidence, correct, 0.5) == pytest.approx((1 + 4 / 3) / 3)
    perm = np.array([5, 3, 1, 0, 4, 2])
    assert aurc(confidence[perm], correct[perm]) == pytest.approx(aurc(confidence, correct))


def test_extremes_and_errors():
    confidence, correct = np.array([0.3, 0.7, 0.1]), np.array([True, False, True])
    assert oracle_collaborative_accuracy(confidence, correct, 0.0) == pytest.approx(2 / 3)
    assert oracle_collaborative_accuracy(confidence, correct, 1.0) == 1.0
    assert accuracy_at_coverage(confidence, correct, 1.0) == pytest.approx(2 / 3)
    assert accuracy_at_coverage(confidence, correct, 0.0) == 0.0  # at least one: the 0.7
    assert accuracy_at_coverage(np.ones(10), np.arange(10) < 3, 0.3) == pytest.approx(0.3)
    with pytest.raises(ValueError, match=r"coverage must be in \[0, 1\]"):
        accuracy_at_coverage(confidence, correct, 1.5)
    with pytest.raises(ValueError, match="no examples"):
        aurc([], [])
    with pytest.raises(ValueError, match=r"correct shape \(2,\)"):
        aurc(confidence, correct[:2])
