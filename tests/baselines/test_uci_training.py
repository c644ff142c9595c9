"""The UCI baselines' vectorised training: stacked members are independent networks."""
import json
import pathlib
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "baselines" / "uci"))
import make_table  # noqa: E402
import uci_utils  # noqa: E402

from uncertainty_baselines.models.mlp import mlp  # noqa: E402


def test_stacked_mlp_equals_independent_models_with_the_same_weights():
    stacked = mlp(4, 1, hidden_units=(8, 6), num_members=3, gaussian_head=True, seed=0)
    x = np.random.default_rng(0).normal(size=(3, 5, 4)).astype(np.float32)
    out = keras.ops.convert_to_numpy(stacked(x))
    for m in range(3):
        single = mlp(4, 1, hidden_units=(8, 6), gaussian_head=True, seed=100 + m)
        # kernel [M, D, U] / bias [M, 1, U] of the stack -> member m's Dense weights
        single.set_weights([w[m].reshape(s.shape) for w, s in
                            zip(stacked.get_weights(), single.get_weights())])
        np.testing.assert_allclose(keras.ops.convert_to_numpy(single(x[m])), out[m],
                                   rtol=1e-5, atol=1e-6)
    assert np.all(out[..., 1] >= 1e-3)  # softplus scale + min_scale


@pytest.mark.parametrize("kwargs", [{}, {"dropout_rate": [0.1, 0.2, 0.3]},
                                    {"variational": True}])
def test_member_loss_has_no_gradient_on_other_members(kwargs):
    model = mlp(4, 1, hidden_units=(8,), num_members=3, gaussian_head=True, seed=0, **kwargs)
    x = tf.random.normal((3, 5, 4))
    with tf.GradientTape() as tape:
        member_2_loss = tf.reduce_sum(model(x)[2] ** 2)
    for grad in tape.gradient(member_2_loss, model.trainable_variables):
        assert np.all(grad.numpy()[:2] == 0) and np.any(grad.numpy()[2] != 0)


def test_training_a_member_ignores_the_other_members_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 64, 3)).astype(np.float32)
    y = (x[..., 0] - x[..., 1]).astype(np.float32)
    finals = []
    for other in (0.0, 100.0):  # split 1's data differs wildly between the two runs
        x_run, y_run = x.copy(), y.copy()
        x_run[1] += other
        y_run[1] *= other + 1
        model = mlp(3, 1, hidden_units=(8,), num_members=2, gaussian_head=True, seed=0)
        uci_utils.train(model, x_run, y_run, [0, 1], epochs=3, batch_size=16,
                        learning_rate=1e-2, loss_fn=uci_utils.gaussian_nll_loss, seed=0)
        finals.append([w[0] for w in model.get_weights()])  # member 0 trains on split 0
    for a, b in zip(*finals):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_training_fits_a_tiny_problem():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1, 32, 2)).astype(np.float32)
    y = (2 * x[..., 0] + 0.05 * rng.normal(size=(1, 32))).astype(np.float32)
    model = mlp(2, 1, hidden_units=(32,), gaussian_head=True, num_members=2, seed=0)
    losses = []
    uci_utils.train(model, x, y, [0, 0], epochs=300, batch_size=16, learning_rate=1e-2,
                    loss_fn=uci_utils.gaussian_nll_loss, seed=0,
                    on_epoch=lambda epoch, loss: losses.append(loss))
    assert np.all(losses[0] > 0.5) and np.all(losses[-1] < -1.0)  # NLL of a tight fit


def test_split_metrics_for_one_gaussian_match_scipy():
    rng = np.random.default_rng(0)
    mean, std = rng.normal(size=20), rng.uniform(0.5, 2, size=20)
    label = mean + std * rng.normal(size=20)
    result = uci_utils.split_metrics(mean[None], std[None], label)
    np.testing.assert_allclose(result["log_likelihood"],
                               stats.norm.logpdf(label, mean, std).mean())
    np.testing.assert_allclose(result["rmse"], np.sqrt(np.mean((label - mean) ** 2)))
    inside = np.abs(label - mean) <= stats.norm.ppf(0.975) * std
    np.testing.assert_allclose(result["interval_coverage_95"], inside.mean())


def test_summarise_gives_mean_and_standard_error():
    summary = uci_utils.summarise([{"rmse": 1.0}, {"rmse": 2.0}, {"rmse": 6.0}])
    assert summary["test/rmse"] == 3.0
    np.testing.assert_allclose(summary["test/rmse_se"], np.std([1, 2, 6], ddof=1) / np.sqrt(3))


def test_parse_splits():
    assert uci_utils.parse_splits("all", 3) == [0, 1, 2]
    assert uci_utils.parse_splits("2,0", 3) == [2, 0]
    with pytest.raises(ValueError, match=r"valid 0\.\.2"):
        uci_utils.parse_splits("3", 3)
    with pytest.raises(ValueError, match="'all' or comma-separated"):
        uci_utils.parse_splits("first", 3)


def test_parse_learning_rates():
    assert uci_utils.parse_learning_rates(["0.01", "1e-3"]) == [0.01, 0.001]
    with pytest.raises(ValueError, match="comma-separated numbers"):
        uci_utils.parse_learning_rates(["fast"])
    with pytest.raises(ValueError, match="positive and finite"):
        uci_utils.parse_learning_rates(["0.01", "0"])


def test_selection_keeps_the_candidates_scored_before_a_divergence():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 32, 2)).astype(np.float32)
    y = x[..., 0].astype(np.float32)
    model = mlp(2, 1, hidden_units=(8,), gaussian_head=True, num_members=2, seed=0)
    epochs_scored = []

    def score():
        epochs_scored.append(len(epochs_scored) + 1)
        if len(epochs_scored) == 2:  # poison the weights: the next epoch's loss is NaN
            model.trainable_variables[0].assign(np.full(model.trainable_variables[0].shape,
                                                        np.nan, np.float32))
        return np.full(2, float(len(epochs_scored)))

    scores = uci_utils.train_and_score_checkpoints(
        model, x, y, [0, 0], [1, 2, 3], score, batch_size=16, learning_rate=1e-2,
        loss_fn=uci_utils.gaussian_nll_loss, seed=0)
    assert sorted(scores) == [1, 2]  # epoch 3 diverged: not a candidate, and no crash
    model = mlp(2, 1, hidden_units=(8,), gaussian_head=True, num_members=2, seed=0)
    model.trainable_variables[0].assign(np.full(model.trainable_variables[0].shape, np.nan,
                                                np.float32))
    with pytest.raises(FloatingPointError, match="epoch 0"):  # nothing scored: an error
        uci_utils.train_and_score_checkpoints(
            model, x, y, [0, 0], [1, 2], lambda: np.zeros(2), batch_size=16, learning_rate=1e-2,
            loss_fn=uci_utils.gaussian_nll_loss, seed=0)


def test_table_verdict_is_within_one_standard_error_or_better():
    assert make_table.matches(-2.50, 0.05, -2.46, higher_is_better=True)  # within 1 s.e.
    assert not make_table.matches(-2.60, 0.05, -2.46, higher_is_better=True)
    assert make_table.matches(2.50, 0.01, 2.97, higher_is_better=False)  # better RMSE
    assert not make_table.matches(3.10, 0.10, 2.97, higher_is_better=False)
    # published 0.00 stands for [0, 0.005): 0.0062 +- 0.0015 is within one s.e. of it
    assert make_table.matches(0.0062, 0.0015, 0.00, higher_is_better=False)
    assert not make_table.matches(0.0070, 0.0015, 0.00, higher_is_better=False)


def test_table_rows_and_counts_from_run_records(tmp_path):
    def record(ll, ll_se, rmse, rmse_se):
        metrics = {"test/log_likelihood": ll, "test/log_likelihood_se": ll_se, "test/rmse": rmse,
                   "test/rmse_se": rmse_se, "test/crps": 1.0, "test/crps_se": 0.1,
                   "test/interval_coverage_95": 0.95}
        return {"metrics": metrics, "splits": list(range(20)), "wall_time_s": 3.0}
    for method, dataset, values in (("dropout", "uci_yacht", (-1.50, 0.1, 1.30, 0.1)),
                                    ("ensemble", "uci_yacht", (-1.10, 0.1, 1.50, 0.1))):
        (tmp_path / method / dataset).mkdir(parents=True)
        (tmp_path / method / dataset / "run.json").write_text(json.dumps(record(*values)))
    text = make_table.table(tmp_path)
    # dropout yacht published -1.55 / 1.11: LL better, RMSE 0.19 worse with s.e. 0.1
    assert "| uci_yacht | dropout | -1.50 ± 0.10 | 1.30 ± 0.10 | -1.55 / 1.11 | ok / worse |" in text
    assert "ensemble: LL and RMSE both ok on 1 of 1 datasets run." in text
    assert "dropout: LL and RMSE both ok on 0 of 1 datasets run." in text
    assert "Not run: deterministic/uci_boston_housing" in text
