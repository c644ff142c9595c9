"""Stacked members are independent networks: the stacked model, its gradients, and
``training.stacked``'s one-step training of all members."""
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import uncertainty_baselines as ub
from uncertainty_baselines.models.mlp import (GaussianHead, dense, mlp, mlp_gaussian,
                                              variational_dense)
from uncertainty_baselines.training import stacked


def test_stacked_mlp_equals_independent_models_with_the_same_weights():
    stack = mlp_gaussian(4, 1, hidden_units=(8, 6), num_members=3, seed=0)
    x = np.random.default_rng(0).normal(size=(3, 5, 4)).astype(np.float32)
    out = keras.ops.convert_to_numpy(stack(x))
    for m in range(3):
        single = mlp_gaussian(4, 1, hidden_units=(8, 6), seed=100 + m)
        # kernel [M, D, U] / bias [M, 1, U] of the stack -> member m's Dense weights
        single.set_weights([w[m].reshape(s.shape) for w, s in
                            zip(stack.get_weights(), single.get_weights())])
        np.testing.assert_allclose(keras.ops.convert_to_numpy(single(x[m])), out[m],
                                   rtol=1e-5, atol=1e-6)
    assert np.all(out[..., 1] >= 1e-3)  # softplus scale + min_scale


@pytest.mark.parametrize("name,kwargs", [("mlp_gaussian", {}),
                                         ("mlp_gaussian", {"dropout_rate": [0.1, 0.2, 0.3]}),
                                         ("mlp_variational_gaussian", {})])
def test_member_loss_has_no_gradient_on_other_members(name, kwargs):
    model = ub.models.get(name, input_dim=4, hidden_units=(8,), num_members=3, seed=0, **kwargs)
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
        model = mlp_gaussian(3, 1, hidden_units=(8,), num_members=2, seed=0)
        stacked.train(model, x_run, y_run, [0, 1], epochs=3, batch_size=16,
                      learning_rate=1e-2, loss_fn=stacked.gaussian_nll_loss, seed=0)
        finals.append([w[0] for w in model.get_weights()])  # member 0 trains on split 0
    for a, b in zip(*finals):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_training_fits_a_tiny_problem():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1, 32, 2)).astype(np.float32)
    y = (2 * x[..., 0] + 0.05 * rng.normal(size=(1, 32))).astype(np.float32)
    model = mlp_gaussian(2, 1, hidden_units=(32,), num_members=2, seed=0)
    losses = []
    stacked.train(model, x, y, [0, 0], epochs=300, batch_size=16, learning_rate=1e-2,
                  loss_fn=stacked.gaussian_nll_loss, seed=0,
                  on_epoch=lambda epoch, loss: losses.append(loss))
    assert np.all(losses[0] > 0.5) and np.all(losses[-1] < -1.0)  # NLL of a tight fit


def test_selection_keeps_the_candidates_scored_before_a_divergence():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 32, 2)).astype(np.float32)
    y = x[..., 0].astype(np.float32)
    model = mlp_gaussian(2, 1, hidden_units=(8,), num_members=2, seed=0)
    epochs_scored = []

    def score():
        epochs_scored.append(len(epochs_scored) + 1)
        if len(epochs_scored) == 2:  # poison the weights: the next epoch's loss is NaN
            model.trainable_variables[0].assign(np.full(model.trainable_variables[0].shape,
                                                        np.nan, np.float32))
        return np.full(2, float(len(epochs_scored)))

    scores = stacked.train_and_score_checkpoints(
        model, x, y, [0, 0], [1, 2, 3], score, batch_size=16, learning_rate=1e-2,
        loss_fn=stacked.gaussian_nll_loss, seed=0)
    assert sorted(scores) == [1, 2]  # epoch 3 diverged: not a candidate, and no crash
    model = mlp_gaussian(2, 1, hidden_units=(8,), num_members=2, seed=0)
    model.trainable_variables[0].assign(np.full(model.trainable_variables[0].shape, np.nan,
                                                np.float32))
    with pytest.raises(FloatingPointError, match="epoch 0"):  # nothing scored: an error
        stacked.train_and_score_checkpoints(
            model, x, y, [0, 0], [1, 2], lambda: np.zeros(2), batch_size=16, learning_rate=1e-2,
            loss_fn=stacked.gaussian_nll_loss, seed=0)


@pytest.mark.parametrize("name,dense_layer,extra", [
    ("mlp_gaussian", dense, {}),
    ("mlp_variational_gaussian", variational_dense(0.5), {"prior_stddev": 0.5})])
def test_method_models_are_the_builder_with_their_factories(name, dense_layer, extra):
    kwargs = dict(input_dim=4, hidden_units=(8,), num_members=2, seed=3)
    registered = ub.models.get(name, **json.loads(json.dumps({**kwargs, **extra})))  # run.json
    built = mlp(num_outputs=2, dense_layer=dense_layer,
                head=lambda: GaussianHead(name="gaussian"), **kwargs)
    assert ([v.path for v in registered.trainable_variables]
            == [v.path for v in built.trainable_variables])
    for a, b in zip(registered.get_weights(), built.get_weights()):
        np.testing.assert_array_equal(a, b)  # same seeds, layer order and initial weights


def test_a_single_member_stack_trains_and_predicts():  # one split, one member: [1, N, D]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 32, 3)).astype(np.float32)
    y = x[..., 0].astype(np.float32)
    for name in ("mlp_gaussian", "mlp_variational_gaussian"):
        model = ub.models.get(name, input_dim=3, hidden_units=(8,), num_members=1, seed=0)
        losses = stacked.train(model, x, y, [0], epochs=2, batch_size=16, learning_rate=1e-2,
                               loss_fn=stacked.gaussian_nll_loss, seed=0)
        assert losses.shape == (1,)
        assert next(stacked.predict(model, x, [0])).shape == (1, 1, 32, 2)
