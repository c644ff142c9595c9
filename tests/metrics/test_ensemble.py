"""Ensemble metrics against explicit loops over members and pairs."""
import itertools

import numpy as np
import pytest
from scipy import special, stats

from uncertainty_baselines.metrics import (
    EnsembleMetrics, disagreement, ensemble_nll, gibbs_nll, mutual_information,
    predictive_entropy)


def members(m=4, n=30, k=5, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(m, n, k)) * 2
    return logits, special.softmax(logits, axis=2), rng.integers(0, k, n)


def test_against_loops():
    logits, probs, labels = members()
    m, n, _ = probs.shape
    mean = probs.mean(0)
    np.testing.assert_allclose(ensemble_nll(probs, labels), -np.log(mean[np.arange(n), labels]))
    np.testing.assert_allclose(ensemble_nll(logits, labels, from_logits=True),
                               -np.log(mean[np.arange(n), labels]))
    gibbs = np.mean([-np.log(probs[i, np.arange(n), labels]) for i in range(m)], axis=0)
    np.testing.assert_allclose(gibbs_nll(probs, labels), gibbs)
    np.testing.assert_allclose(predictive_entropy(probs), stats.entropy(mean, axis=1))
    expected_mi = stats.entropy(mean, axis=1) - np.mean(
        [stats.entropy(probs[i], axis=1) for i in range(m)], axis=0)
    np.testing.assert_allclose(mutual_information(probs), expected_mi, atol=1e-12)
    top = probs.argmax(2)
    pairs = list(itertools.combinations(range(m), 2))
    expected = np.mean([top[i] != top[j] for i, j in pairs], axis=0)
    np.testing.assert_allclose(disagreement(probs), expected)


def test_edge_cases():
    _, probs, labels = members(m=1)
    assert (disagreement(probs) == 0).all()
    np.testing.assert_allclose(mutual_information(probs), 0, atol=1e-12)
    np.testing.assert_allclose(ensemble_nll(probs, labels), gibbs_nll(probs, labels))
    identical = np.repeat(probs, 3, axis=0)
    np.testing.assert_allclose(mutual_information(identical), 0, atol=1e-12)
    # Jensen: the ensemble NLL never exceeds the Gibbs NLL.
    _, probs, labels = members(seed=1)
    assert (ensemble_nll(probs, labels) <= gibbs_nll(probs, labels) + 1e-12).all()
    with pytest.raises(ValueError, match=r"\[M, N, K\]"):
        ensemble_nll(probs[0], labels)
    with pytest.raises(ValueError, match=r"labels shape \(29,\)"):
        gibbs_nll(probs, labels[1:])


def test_streaming_equals_functions():
    logits, probs, labels = members(n=50)
    streamed = EnsembleMetrics(from_logits=True)
    for part in np.array_split(np.arange(50), 4):
        piece = EnsembleMetrics(from_logits=True)
        piece.add_batch(logits[:, part], label=labels[part])
        streamed.merge(piece)
    expected = {
        "ensemble_negative_log_likelihood": ensemble_nll(probs, labels).mean(),
        "gibbs_negative_log_likelihood": gibbs_nll(probs, labels).mean(),
        "disagreement": disagreement(probs).mean(),
        "predictive_entropy": predictive_entropy(probs).mean(),
        "mutual_information": mutual_information(probs).mean(),
    }
    assert streamed.result() == pytest.approx(expected, rel=1e-10)
    with pytest.raises(ValueError, match="no examples"):
        EnsembleMetrics().result()
