"""Uncertainty layers on their own: MC dropout, stacked Dense, mean-field variational Dense."""
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
import torch

from uncertainty_baselines.layers import DenseVariational, MCDropout, StackedDense


# ----- MCDropout -------------------------------------------------------------------------
def test_mc_dropout_is_active_at_inference_and_rescales():
    layer = MCDropout(0.25, seed=1)
    x = np.ones((200, 100), np.float32)
    a = keras.ops.convert_to_numpy(layer(x, training=False))
    b = keras.ops.convert_to_numpy(layer(x, training=False))
    assert not np.array_equal(a, b)  # a new mask per call, even with training=False
    assert set(np.unique(a)) == {0.0, np.float32(1 / 0.75)}  # inverted dropout
    assert abs((a == 0).mean() - 0.25) < 0.01  # 20,000 draws: s.d. of the rate ~0.003


def test_mc_dropout_per_member_rates():
    layer = MCDropout([0.0, 0.5], seed=0)
    out = keras.ops.convert_to_numpy(layer(np.ones((2, 100, 50), np.float32)))
    np.testing.assert_array_equal(out[0], 1.0)  # rate 0 leaves member 0 untouched
    assert abs((out[1] == 0).mean() - 0.5) < 0.02
    with pytest.raises(ValueError, match="leading axis 2"):
        MCDropout([0.1, 0.2])(np.ones((3, 4, 5), np.float32))


def test_mc_dropout_same_seed_same_masks():
    x = np.ones((8, 16), np.float32)
    a, b = MCDropout(0.5, seed=7), MCDropout(0.5, seed=7)
    for _ in range(2):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a(x)),
                                      keras.ops.convert_to_numpy(b(x)))


def test_mc_dropout_masks_are_independent_across_elements_copies_and_calls():
    """The TensorFlow masks come from a hash of the element index and a per-call key: at rate
    0.5, neighbours along each axis, the copies of a tiled batch (MC dropout's passes) and two
    calls each agree on half the elements, as independent fair coins (2^17 pairs: s.d. 0.0014)."""
    layer = MCDropout(0.5, seed=5)
    x = np.ones((2, 256, 256, 2), np.float32)
    x[1] = x[0]  # The second copy: same values, other masks.
    first, second = (keras.ops.convert_to_numpy(layer(x)) == 0 for _ in range(2))
    pairs = {"next along axis 1": (first[:, :-1], first[:, 1:]), "next along axis 2": (first[:, :, :-1], first[:, :, 1:]),
             "next channel": (first[..., 0], first[..., 1]), "other copy": (first[0], first[1]),
             "next call": (first, second)}
    for name, (a, b) in pairs.items():
        assert abs((a == b).mean() - 0.5) < 0.006, name
    assert abs(first.mean() - 0.5) < 0.006


def test_mc_dropout_replicas_draw_their_own_masks():
    """Mirrored replicas share the seed generator's state; the replica id in the hash key keeps
    their masks apart (same input on both replicas, half the elements agree at rate 0.5)."""
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        layer = MCDropout(0.5, seed=2)
    x = tf.ones((64, 256))
    first, second = (r.numpy() == 0 for r in strategy.experimental_local_results(strategy.run(tf.function(layer),
                                                                                               args=(x,))))
    assert abs((first == second).mean() - 0.5) < 0.015  # 16,384 pairs: s.d. 0.004.


def test_replica_seed_generator_gives_each_replica_its_own_stream():
    """Plain seeds on one device; under two mirrored replicas, two different seeds per call,
    none repeating across calls (so no replica replays another call's noise)."""
    from uncertainty_baselines.layers.common import ReplicaSeedGenerator
    plain, ours = keras.random.SeedGenerator(3), ReplicaSeedGenerator(3)
    for _ in range(2):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours.next()), keras.ops.convert_to_numpy(plain.next()))
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        generator = ReplicaSeedGenerator(3)
    step = tf.function(lambda: strategy.run(generator.next))
    seeds = [tuple(s.numpy()) for _ in range(3) for s in strategy.experimental_local_results(step())]
    assert len(set(seeds)) == 6, seeds


def test_filterwise_mc_dropout_drops_whole_feature_maps():
    x = np.ones((64, 5, 5, 32), np.float32)
    out = keras.ops.convert_to_numpy(MCDropout(0.5, seed=3, filterwise=True)(x))
    per_map = out.reshape(64, 25, 32)
    assert (per_map == per_map[:, :1]).all()  # Each (example, channel) map is all kept or all dropped.
    assert set(np.unique(out)) == {0.0, 2.0}
    assert abs((per_map[:, 0] == 0).mean() - 0.5) < 0.05  # 2,048 draws: s.d. ~0.011.
    with pytest.raises(ValueError, match="one rate"):
        MCDropout([0.1, 0.2], filterwise=True)


@pytest.mark.parametrize("rate", [-0.1, 1.0, [0.2, 1.5], []])
def test_mc_dropout_rejects_bad_rates(rate):
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        MCDropout(rate)


# ----- StackedDense ----------------------------------------------------------------------
def test_stacked_dense_is_a_dense_layer_per_member():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5, 4)).astype(np.float32)
    layer = StackedDense(6, num_members=3, activation="relu", seed=0)
    out = keras.ops.convert_to_numpy(layer(x))
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in (layer.kernel, layer.bias))
    for m in range(3):  # oracle: an ordinary matmul with member m's weights
        np.testing.assert_allclose(out[m], np.maximum(x[m] @ kernel[m] + bias[m], 0), rtol=1e-5,
                                   atol=1e-6)
    limit = math.sqrt(6 / (4 + 6))  # Glorot over each member's own [4, 6] fan
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.5 * limit


def test_stacked_dense_members_do_not_share_gradients():
    layer = StackedDense(2, num_members=3, seed=0)
    x = tf.random.normal((3, 4, 5))
    with tf.GradientTape() as tape:
        member_1_loss = tf.reduce_sum(layer(x)[1] ** 2)
    grad = tape.gradient(member_1_loss, layer.kernel).numpy()
    assert np.all(grad[[0, 2]] == 0) and np.any(grad[1] != 0)


def test_stacked_dense_rejects_wrong_member_axis():
    with pytest.raises(ValueError, match="num_members=3"):
        StackedDense(2, num_members=3)(np.zeros((4, 2, 5), np.float32))


# ----- DenseVariational ------------------------------------------------------------------
@pytest.mark.parametrize("num_members,shape,expected", [(None, (7, 3), (7, 4)),
                                                        (2, (2, 7, 3), (2, 7, 4))])
def test_variational_shapes(num_members, shape, expected):
    layer = DenseVariational(4, num_members=num_members)
    assert tuple(layer(np.zeros(shape, np.float32)).shape) == expected
    assert tuple(layer.kl().shape) == (() if num_members is None else (2,))


def test_variational_kl_matches_torch_closed_form():
    layer = DenseVariational(3, num_members=2, prior_stddev=0.5, init_stddev=0.2, seed=0)
    layer(np.zeros((2, 1, 4), np.float32))
    rng = np.random.default_rng(0)
    for w in (layer.kernel_loc, layer.bias_loc, layer.kernel_rho, layer.bias_rho):
        w.assign(rng.normal(size=w.shape).astype(np.float32))
    expected = np.zeros(2)
    for loc, rho in ((layer.kernel_loc, layer.kernel_rho), (layer.bias_loc, layer.bias_rho)):
        q = torch.distributions.Normal(torch.tensor(loc.numpy(), dtype=torch.float64),
                                       torch.nn.functional.softplus(
                                           torch.tensor(rho.numpy(), dtype=torch.float64)))
        p = torch.distributions.Normal(0.0, 0.5)
        expected += torch.distributions.kl_divergence(q, p).flatten(1).sum(1).numpy()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.kl()), expected, rtol=1e-5)


def test_variational_kl_is_zero_at_the_prior():
    layer = DenseVariational(2, prior_stddev=0.3, init_stddev=0.3)
    layer(np.zeros((1, 2), np.float32))
    layer.kernel_loc.assign(np.zeros((2, 2), np.float32))
    assert abs(float(layer.kl())) < 1e-5


def test_variational_samples_weights_around_their_means():
    layer = DenseVariational(1, init_stddev=0.5, seed=3)
    x = np.ones((1, 2), np.float32)
    draws = np.array([float(layer(x)[0, 0]) for _ in range(400)])
    loc = float(keras.ops.sum(layer.kernel_loc) + layer.bias_loc[0])
    # output = sum of 3 independent N(., 0.5^2) draws: mean loc, variance 3 * 0.25;
    # tolerances are 4 standard errors of the sample mean and variance
    assert abs(draws.mean() - loc) < 4 * math.sqrt(0.75 / 400)
    assert abs(draws.var() - 0.75) < 4 * 0.75 * math.sqrt(2 / 399)


def test_variational_same_seed_same_draws():
    x = np.ones((2, 3), np.float32)
    a, b = DenseVariational(2, init_stddev=0.5, seed=5), DenseVariational(2, init_stddev=0.5, seed=5)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(a(x)), keras.ops.convert_to_numpy(b(x)))


def test_variational_rejects_bad_arguments():
    with pytest.raises(ValueError, match="prior_stddev"):
        DenseVariational(2, prior_stddev=0.0)
    with pytest.raises(ValueError, match="units"):
        DenseVariational(0)
