"""ClassificationMetrics / AdaptiveCalibrationError against independent oracles and by hand."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

import uncertainty_baselines as ub
from uncertainty_baselines.metrics import AdaptiveCalibrationError, ClassificationMetrics, bin_index


def random_predictions(n, k, seed, scale=3.0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, k)) * scale
    probs = np.exp(logits - logits.max(1, keepdims=True))
    return probs / probs.sum(1, keepdims=True), rng.integers(0, k, n)


def one_pass(probs, labels, **kwargs):
    metrics = ClassificationMetrics(**kwargs)
    metrics.add_batch(probs, label=labels)
    return metrics.result()


def test_accuracy_nll_brier_match_sklearn():
    probs, labels = random_predictions(500, 7, seed=0)
    result = one_pass(probs, labels)
    assert result["accuracy"] == pytest.approx(skm.accuracy_score(labels, probs.argmax(1)))
    assert result["negative_log_likelihood"] == pytest.approx(
        skm.log_loss(labels, probs, labels=range(7)), rel=1e-12)
    onehot = np.eye(7)[labels]
    # sklearn's multiclass Brier (>= 1.7) is the sum over classes; computed here directly.
    assert result["brier"] == pytest.approx(np.mean(((probs - onehot) ** 2).sum(1)), rel=1e-10)


def test_binary_brier_is_twice_sklearn_and_top_label():
    rng = np.random.default_rng(1)
    p1 = rng.random(300)
    labels = (rng.random(300) < p1).astype(int)
    result = one_pass(p1, labels)
    assert result["brier"] == pytest.approx(2 * skm.brier_score_loss(labels, p1))
    two_class = one_pass(np.stack([1 - p1, p1], 1), labels)
    assert result == pytest.approx(two_class)
    # Top-label: confidences are max(p, 1 - p) >= 0.5, so with 2 bins everything is in bin 1.
    metrics = ClassificationMetrics(num_bins=2)
    metrics.add_batch(p1, label=labels)
    assert metrics.reliability_diagram()["count"].tolist() == [0, 300]


def test_calibration_errors_match_torchmetrics():
    torch = pytest.importorskip("torch")
    from torchmetrics.classification import MulticlassCalibrationError

    probs, labels = random_predictions(2000, 10, seed=2)
    result = one_pass(probs, labels)
    target = torch.from_numpy(labels)
    preds = torch.from_numpy(probs)
    for norm, key in (("l1", "ece"), ("max", "mce"), ("l2", "rmsce")):
        oracle = MulticlassCalibrationError(num_classes=10, n_bins=15, norm=norm)
        # torchmetrics computes in float32; no confidence here is exactly 1.0 or k/15.
        assert result[key] == pytest.approx(float(oracle(preds, target)), abs=1e-5), key


def test_torchmetrics_differs_at_confidence_one():
    """torchmetrics puts c = 1.0 in an extra bin; the suite puts it in the last bin."""
    torch = pytest.importorskip("torch")
    from torchmetrics.classification import MulticlassCalibrationError

    probs = np.array([[1.0, 0.0], [0.0, 1.0], [0.95, 0.05], [0.96, 0.04]])
    labels = np.array([0, 0, 0, 1])
    # Last bin [14/15, 1] holds all four: acc 2/4, conf (1 + 1 + .95 + .96)/4 -> gap .4775.
    assert one_pass(probs, labels)["ece"] == pytest.approx(0.4775)
    oracle = MulticlassCalibrationError(num_classes=2, n_bins=15, norm="l1")
    theirs = float(oracle(torch.tensor(probs), torch.tensor(labels)))
    # Theirs: bin 14 {.95 right, .96 wrong} gap |.5 - .955| and bin 15 {1.0 right, 1.0 wrong}.
    assert theirs == pytest.approx(0.5 * 0.455 + 0.5 * 0.5, abs=1e-6)


def test_hand_computed_ece_mce_rmsce_classwise():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]])
    labels = np.array([0, 1, 1, 1])
    result = one_pass(probs, labels, num_bins=2)
    # Top-label: all confidences >= .5 -> bin 1: acc 3/4, conf (.9+.8+.7+.6)/4 = .75.
    assert result["ece"] == pytest.approx(0.0)
    assert result["mce"] == pytest.approx(0.0)
    # Classwise, class 0: p = .9 .8 (bin 1, hits 1) and .3 .4 (bin 0, hits 0):
    #   |1 - 1.7| + |0 - .7| = 1.4; class 1: p = .1 .2 (bin 0, hits 1), .7 .6 (bin 1, hits 2):
    #   |1 - .3| + |2 - 1.3| = 1.4; classwise ECE = (1.4 + 1.4) / (4 * 2).
    assert result["classwise_ece"] == pytest.approx(0.35)
    result3 = one_pass(probs, labels, num_bins=10)
    # Bins 9 (.9 ok), 8 (.8 wrong), 7 (.7 ok), 6 (.6 ok): gaps .1 .8 .3 .4.
    assert result3["ece"] == pytest.approx((0.1 + 0.8 + 0.3 + 0.4) / 4)
    assert result3["mce"] == pytest.approx(0.8)
    assert result3["rmsce"] == pytest.approx(np.sqrt((0.01 + 0.64 + 0.09 + 0.16) / 4))


@pytest.mark.parametrize("num_classes", [6, 50])  # 50 takes the many-classes code path
def test_against_loops_over_bins(num_classes):
    probs, labels = random_predictions(3000, num_classes, seed=7, scale=2.0)
    result = one_pass(probs, labels)
    num_bins, n = 15, len(labels)
    classwise = 0.0
    for k in range(num_classes):
        bins = np.minimum(np.floor(probs[:, k] * num_bins), num_bins - 1)
        for b in range(num_bins):
            in_bin = bins == b
            classwise += abs(probs[in_bin, k].sum() - np.sum(labels[in_bin] == k))
    assert result["classwise_ece"] == pytest.approx(classwise / (n * num_classes), rel=1e-9)
    conf, correct = probs.max(1), probs.argmax(1) == labels
    bins = np.minimum(np.floor(conf * num_bins), num_bins - 1)
    ece = sum(abs(correct[bins == b].sum() - conf[bins == b].sum()) for b in range(num_bins))
    assert result["ece"] == pytest.approx(ece / n, rel=1e-9)
    assert result["accuracy"] == correct.mean()
    float32 = one_pass(probs.astype(np.float32), labels)
    assert float32 == pytest.approx(result, rel=1e-4, abs=1e-6)


def test_near_uniform_probabilities_over_many_classes():
    """No p_k reaches the first bin edge 1/15 (an untrained 151-way classifier): the
    classwise sums are all in bin 0 and still floats."""
    probs = np.full((4, 151), 1 / 151, np.float32)
    result = one_pass(probs, np.array([0, 1, 2, 150]))
    # Per class k: |sum_n p_k - count(y = k)|: 4/151 for the 147 unlabelled classes, 1 - 4/151 for the 4 others.
    expected = (147 * 4 / 151 + 4 * (1 - 4 / 151)) / (4 * 151)
    assert result["classwise_ece"] == pytest.approx(expected, rel=1e-5)
    assert result["ece"] == pytest.approx(abs(0.25 - 1 / 151), rel=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("num_bins", [1, 2, 10, 15, 49, 100])
def test_bin_index_edges(dtype, num_bins):
    edges = (np.arange(num_bins + 1) / num_bins).astype(dtype)
    expected = np.minimum(np.arange(num_bins + 1), num_bins - 1)
    assert bin_index(edges, num_bins).tolist() == expected.tolist()
    below = np.nextafter(edges[1:], dtype(0))  # just under each upper edge
    assert bin_index(below, num_bins).tolist() == list(range(num_bins))
    assert bin_index(np.array([0.0, 1.0], dtype), num_bins).tolist() == [0, num_bins - 1]


def test_bin_index_one_49th_lands_in_bin_one():
    assert 1 / 49 * 49 < 1  # the float64 trap the exact re-check avoids
    assert bin_index(np.array([1 / 49]), 49).tolist() == [1]


def test_confidence_exactly_on_edges_and_one():
    probs = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.6, 0.4, 0.0], [0.0, 0.2, 0.8]])
    labels = np.array([0, 0, 0, 2])
    metrics = ClassificationMetrics(num_bins=5)
    metrics.add_batch(probs, label=labels)
    diagram = metrics.reliability_diagram()
    # 1.0 -> bin 4 (twice, one right), 0.6 = 3/5 -> bin 3, 0.8 = 4/5 -> bin 4.
    assert diagram["count"].tolist() == [0, 0, 0, 1, 3]
    np.testing.assert_allclose(diagram["accuracy"][3:], [1.0, 2 / 3])
    np.testing.assert_allclose(diagram["confidence"][3:], [0.6, 2.8 / 3])
    assert np.isnan(diagram["accuracy"][:3]).all()


def test_one_class_absent_and_all_ties():
    probs, labels = random_predictions(200, 4, seed=3)
    labels[labels == 2] = 0  # class 2 never occurs
    result = one_pass(probs, labels)
    assert result["accuracy"] == pytest.approx(np.mean(probs.argmax(1) == labels))
    uniform = np.full((6, 3), 1 / 3)
    tied = one_pass(uniform, np.array([0, 1, 2, 0, 1, 2]))
    assert tied["accuracy"] == pytest.approx(2 / 6)  # argmax of a tie is class 0
    assert tied["ece"] == pytest.approx(0.0)
    assert tied["negative_log_likelihood"] == pytest.approx(np.log(3))


def test_from_logits_is_exact():
    logits = np.array([[0.0, 800.0], [3.0, 1.0]])
    result = one_pass(logits, np.array([0, 0]), from_logits=True)
    # -log softmax: 800 (exact, where probabilities underflow) and log(1 + e^-2).
    assert result["negative_log_likelihood"] == pytest.approx((800 + np.log1p(np.exp(-2))) / 2)
    assert result["accuracy"] == 0.5


def test_perfectly_calibrated_predictor_has_small_ece():
    rng = np.random.default_rng(4)
    probs = rng.dirichlet(np.ones(5) * 0.5, size=100_000)
    labels = (rng.random((100_000, 1)) > probs.cumsum(1)).sum(1)  # y ~ Categorical(p)
    result = one_pass(probs, labels)
    assert result["ece"] < 0.01 and result["classwise_ece"] < 0.005
    adaptive = AdaptiveCalibrationError()
    adaptive.add_batch(probs, label=labels)
    assert adaptive.result()["adaptive_ece"] < 0.01
    overconfident = one_pass(probs ** 3 / (probs ** 3).sum(1, keepdims=True), labels)
    assert overconfident["ece"] > 0.1


def test_adaptive_ece_hand_computed():
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.7, 0.3], [0.55, 0.45], [0.8, 0.2]])
    labels = np.array([0, 1, 0, 0, 1])
    metrics = AdaptiveCalibrationError(num_bins=2)
    metrics.add_batch(probs, label=labels)
    # Sorted confidences .55 .6 .7 | .8 .9 (sizes 3, 2): correct 1 0 1 | 0 1.
    expected = (abs(2 - 1.85) + abs(1 - 1.7)) / 5
    assert metrics.result()["adaptive_ece"] == pytest.approx(expected)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 60), k=st.integers(2, 6), seed=st.integers(0, 10_000),
       cuts=st.lists(st.integers(0, 60), max_size=4))
def test_streaming_merge_and_order_equal_one_pass(n, k, seed, cuts):
    probs, labels = random_predictions(n, k, seed)
    probs = np.round(probs, 2)  # many ties and exact bin edges
    probs /= probs.sum(1, keepdims=True)
    expected = one_pass(probs, labels, num_classes=k)
    bounds = [0, *sorted(min(c, n) for c in cuts), n]
    streamed, merged = ClassificationMetrics(), ClassificationMetrics()
    adaptive_streamed = AdaptiveCalibrationError()
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        streamed.add_batch(probs[lo:hi], label=labels[lo:hi])
        part = ClassificationMetrics(num_classes=k)
        part.add_batch(probs[lo:hi], label=labels[lo:hi])
        merged.merge(part)
        adaptive_part = AdaptiveCalibrationError()
        adaptive_part.add_batch(probs[lo:hi], label=labels[lo:hi])
        adaptive_streamed.merge(adaptive_part)
    perm = np.random.default_rng(seed).permutation(n)
    shuffled = one_pass(probs[perm], labels[perm])
    adaptive_shuffled = AdaptiveCalibrationError()
    adaptive_shuffled.add_batch(probs[perm], label=labels[perm])
    for other in (streamed.result(), merged.result(), shuffled):
        assert other == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert adaptive_streamed.result() == pytest.approx(adaptive_shuffled.result(), abs=1e-12)
    for key in ("accuracy", "ece", "mce", "rmsce", "classwise_ece"):
        assert 0 <= expected[key] <= 1
    assert 0 <= expected["brier"] <= 2 and expected["negative_log_likelihood"] >= 0


def test_reset_and_empty_evaluation():
    metrics = ClassificationMetrics()
    with pytest.raises(ValueError, match="no examples"):
        metrics.result()
    metrics.add_batch(np.zeros((0, 3)), label=np.zeros(0, int))
    with pytest.raises(ValueError, match="no examples"):
        metrics.result()
    metrics.add_batch(np.array([[0.2, 0.8, 0.0]]), label=np.array([1]))
    assert metrics.result()["accuracy"] == 1
    metrics.reset()
    with pytest.raises(ValueError, match="no examples"):
        metrics.result()


@pytest.mark.parametrize("probs, labels, message", [
    (np.array([[0.5, 0.6]]), [0], "sum to 1.*from_logits"),
    (np.array([[2.0, -1.0]]), [0], r"\[0, 1\].*from_logits"),
    (np.array([[np.nan, 0.5], [np.inf, 0.5], [np.nan, 0.1]]), [0, 0, 0], "2 NaN and 1 infinite"),
    (np.array([[0.5, 0.5]]), [2], r"\[0, 1\] for 2 classes"),
    (np.array([[0.5, 0.5]]), [-1], r"\[0, 1\] for 2 classes"),
    (np.array([[0.5, 0.5], [0.5, 0.5]]), [0, 1, 1], r"labels shape \(3,\).*probs shape \(2, 2\)"),
    (np.full((2, 2, 2), 0.5), [0, 1], r"shape \[N, K\]"),
    (np.array([[0.5, 0.5]]), [0.5], "integer"),
])
def test_bad_input_raises_clear_errors(probs, labels, message):
    with pytest.raises(ValueError, match=message):
        ClassificationMetrics().add_batch(probs, label=np.array(labels))


def test_class_count_and_merge_mismatch():
    metrics = ClassificationMetrics(num_classes=3)
    with pytest.raises(ValueError, match="num_classes=3"):
        metrics.add_batch(np.array([[0.5, 0.5]]), label=[0])
    with pytest.raises(ValueError, match="num_bins"):
        ClassificationMetrics(num_bins=10).merge(ClassificationMetrics(num_bins=15))
    with pytest.raises(ValueError, match="cannot merge"):
        ClassificationMetrics().merge(AdaptiveCalibrationError())


def test_accepts_tensorflow_jax_and_torch_arrays():
    probs, labels = random_predictions(50, 3, seed=5)
    expected = one_pass(probs, labels)
    tf = pytest.importorskip("tensorflow")
    torch = pytest.importorskip("torch")
    jnp = pytest.importorskip("jax.numpy")
    inputs = [
        (tf.constant(probs), tf.constant(labels, tf.int32)),
        (torch.tensor(probs, requires_grad=True), torch.tensor(labels)),
        (jnp.asarray(probs, dtype=jnp.float32), jnp.asarray(labels)),
    ]
    for framework_probs, framework_labels in inputs:
        result = one_pass(framework_probs, framework_labels)
        assert result == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert ub.metrics.to_numpy(torch.tensor([1.0], dtype=torch.bfloat16)).tolist() == [1.0]
