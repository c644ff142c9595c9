"""experimental/gp_length_scale on synthetic clusters: a length-scale far below the
distances between same-class points leaves the GP unable to generalise (chance accuracy,
a kernel ~0 between any two points); one matched to them classifies held-out points and
gives far-away points a larger predictive variance."""
import numpy as np
import pytest

from experimental.gp_length_scale import probe

DIM, CLASSES, PER_CLASS = 32, 5, 40
HEAD = dict(num_inducing=512, random_feature_type="fourier", scale_features=False, normalize_input=True,
            input_projection_dim=None, ridge_penalty=1.0, seed=0)  # bert_sngp's kind of head.


def clusters(seed: int, per_class: int, spread: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Points around CLASSES fixed random centres (the same centres for every seed)."""
    centres = np.random.default_rng(123).normal(size=(CLASSES, DIM))
    labels = np.repeat(np.arange(CLASSES), per_class)
    rng = np.random.default_rng(seed)
    return (centres[labels] + spread * rng.normal(size=(len(labels), DIM))).astype("float32"), labels


@pytest.fixture(scope="module")
def data():
    x_train, y_train = clusters(0, PER_CLASS)
    x_test, y_test = clusters(1, 10)
    x_far = np.random.default_rng(2).normal(size=(50, DIM)).astype("float32")  # No class's neighbourhood.
    return x_train, y_train, x_test, y_test, x_far


def run(data, length_scale):
    return probe.probe(*data, length_scale, HEAD, batch_size=64)


def test_a_matched_length_scale_generalises_and_detects_far_points(data):
    record = run(data, 4.0)  # Same-class squared distances after layer norm: about 2 * 32 * 0.1.
    assert record["test_accuracy"] == 1.0
    assert record["ood_auroc_variance"] > 0.95
    assert record["kernel_same_intent"] > 0.5 > 0.2 > record["kernel_other_intent"]


def test_a_length_scale_far_below_the_distances_cannot_generalise(data):
    record = run(data, 0.05)
    assert record["test_accuracy"] < 0.5  # Chance is 0.2.
    assert record["kernel_same_intent"] < 1e-6


def test_the_fit_is_the_ridge_solution_and_the_layers_own_variance(data):
    x_train, y_train, x_test, _, _ = data
    head = {**HEAD, "num_inducing": 256, "ridge_penalty": 2.0}
    gp = probe.fit_gp(x_train, y_train, 4.0, head, batch_size=64)
    phi = np.asarray(gp.random_features(x_train), np.float64)
    precision = 2.0 * np.eye(256) + phi.T @ phi
    np.testing.assert_allclose(np.asarray(gp.precision), precision, rtol=1e-4, atol=1e-2)
    beta = np.linalg.solve(precision, phi.T @ np.eye(probe.NUM_CLASSES)[y_train])
    np.testing.assert_allclose(np.asarray(gp.kernel), beta, atol=1e-5)
    phi_test = np.asarray(gp.random_features(x_test), np.float64)
    _, variance = gp(x_test, training=False)
    expected = 2.0 * np.einsum("bi,ij,bj->b", phi_test, np.linalg.inv(precision), phi_test)
    np.testing.assert_allclose(np.asarray(variance), expected, rtol=1e-3)
