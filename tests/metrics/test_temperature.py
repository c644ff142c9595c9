"""Temperature scaling: recovers a known temperature and minimises the NLL."""
import numpy as np
import pytest
from scipy import special

from uncertainty_baselines.metrics import apply_temperature, fit_temperature


def nll(logits, labels, temperature):
    return -np.mean(special.log_softmax(logits / temperature, axis=1)[np.arange(len(labels)),
                                                                        labels])


def test_recovers_known_temperature_and_grid_minimum():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(size=(20_000, 5)) * 2
    labels = (rng.random((20_000, 1)) > special.softmax(true_logits, 1).cumsum(1)).sum(1)
    overconfident = true_logits * 2.5  # a model whose temperature should be 2.5
    temperature = fit_temperature(overconfident, labels)
    assert temperature == pytest.approx(2.5, rel=0.05)
    grid = np.linspace(temperature * 0.9, temperature * 1.1, 41)
    assert nll(overconfident, labels, temperature) <= min(
        nll(overconfident, labels, t) for t in grid) + 1e-9


def test_apply_temperature():
    logits = np.array([[2.0, 0.0], [0.0, 4.0]])
    np.testing.assert_allclose(apply_temperature(logits, 2.0), special.softmax(logits / 2, 1))
    np.testing.assert_allclose(apply_temperature(logits, 1e6), 0.5, atol=1e-5)
    with pytest.raises(ValueError, match="positive"):
        apply_temperature(logits, 0.0)


def test_separable_logits_are_refused():
    logits = np.array([[5.0, 0.0], [0.0, 5.0]])
    with pytest.raises(ValueError, match="perfectly separated"):
        fit_temperature(logits, np.array([0, 1]))
    with pytest.raises(ValueError, match="no examples"):
        fit_temperature(np.zeros((0, 2)), np.zeros(0, int))
