"""BatchEnsemble layers: each member's output against plain Dense/Conv2D oracles with the
member's effective kernel diag(r_m) W diag(s_m), the random-sign initialiser's law, the
members' gradient isolation, serialisation, and the JAX and PyTorch backends."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from backend_run import run_on_backend
from uncertainty_baselines.layers import (Conv2DBatchEnsemble, DenseBatchEnsemble, RandomSign,
                                          sign_initializer)

M, B = 3, 4  # members, examples per member


def to_np(x) -> np.ndarray:
    return keras.ops.convert_to_numpy(x)


def normal(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.normal(size=shape).astype(np.float32)


def member_rows(array: np.ndarray, m: int) -> np.ndarray:
    """Member m's rows of a member-major batch of M * B rows."""
    return array[m * B:(m + 1) * B]


def plain_conv(kernel: np.ndarray, bias: np.ndarray, strides: int, padding: str,
               x: np.ndarray) -> np.ndarray:
    """keras.layers.Conv2D with the given kernel and bias, applied to x."""
    conv = keras.layers.Conv2D(kernel.shape[-1], kernel.shape[:2], strides=strides,
                               padding=padding)
    conv.build(x.shape)
    conv.set_weights([kernel, bias])
    return to_np(conv(x))


# ----- (a) one member with unit fast weights is the plain layer -------------------------------
def test_dense_with_one_member_and_unit_fast_weights_is_a_dense_layer():
    rng = np.random.default_rng(0)
    x, bias = normal(rng, 7, 5), normal(rng, 4)
    layer = DenseBatchEnsemble(4, ensemble_size=1, activation="tanh",
                               fast_weight_initializer="ones")
    layer.build(x.shape)
    layer.bias.assign(bias[None])
    plain = keras.layers.Dense(4, activation="tanh")
    plain.build(x.shape)
    plain.set_weights([to_np(layer.kernel), bias])
    np.testing.assert_allclose(to_np(layer(x)), to_np(plain(x)), rtol=0, atol=1e-6)


@pytest.mark.parametrize("strides,padding", [(1, "same"), (2, "same"), (2, "valid")])
def test_conv_with_one_member_and_unit_fast_weights_is_a_conv2d(strides, padding):
    rng = np.random.default_rng(1)
    x, bias = normal(rng, 2, 7, 7, 3), normal(rng, 4)
    layer = Conv2DBatchEnsemble(4, (3, 2), ensemble_size=1, strides=strides, padding=padding,
                                fast_weight_initializer="ones")
    layer.build(x.shape)
    layer.bias.assign(bias[None])
    expected = plain_conv(to_np(layer.kernel), bias, strides, padding, x)
    np.testing.assert_allclose(to_np(layer(x)), expected, rtol=0, atol=1e-6)


# ----- (b) member m is the plain layer with kernel diag(r_m) W diag(s_m) and bias b_m ---------
@pytest.mark.parametrize("row_shape", [(5,), (2, 5)])  # [N, D] and [N, T, D] inputs
def test_each_dense_member_uses_its_rank_one_scaled_kernel(row_shape):
    rng = np.random.default_rng(2)
    x = normal(rng, M * B, *row_shape)  # distinct rows per member: mixing would show
    layer = DenseBatchEnsemble(6, ensemble_size=M, activation="relu", seed=3)
    layer.build(x.shape)
    layer.bias.assign(normal(rng, M, 6))
    out = to_np(layer(x))
    kernel, r, s, bias = (to_np(w) for w in (layer.kernel, layer.alpha, layer.gamma, layer.bias))
    for m in range(M):
        member_kernel = np.diag(r[m]) @ kernel @ np.diag(s[m])
        expected = np.maximum(member_rows(x, m) @ member_kernel + bias[m], 0)
        np.testing.assert_allclose(member_rows(out, m), expected, rtol=1e-5, atol=1e-5)


def test_each_conv_member_uses_its_rank_one_scaled_kernel():
    rng = np.random.default_rng(4)
    x = normal(rng, M * B, 6, 6, 3)
    layer = Conv2DBatchEnsemble(5, 3, ensemble_size=M, strides=2, padding="same", seed=5)
    layer.build(x.shape)
    layer.bias.assign(normal(rng, M, 5))
    out = to_np(layer(x))
    kernel, r, s, bias = (to_np(w) for w in (layer.kernel, layer.alpha, layer.gamma, layer.bias))
    for m in range(M):
        member_kernel = kernel * r[m][None, None, :, None] * s[m][None, None, None, :]
        expected = plain_conv(member_kernel, bias[m], 2, "same", member_rows(x, m))
        np.testing.assert_allclose(member_rows(out, m), expected, rtol=1e-5, atol=1e-5)


def test_weights_are_one_shared_kernel_and_rank_one_member_factors():
    dense = DenseBatchEnsemble(6, ensemble_size=M)
    dense.build((None, 5))
    conv = Conv2DBatchEnsemble(4, 3, ensemble_size=M, use_bias=False)
    conv.build((None, 8, 8, 2))
    assert {w.name: tuple(w.shape) for w in dense.weights} == {
        "kernel": (5, 6), "alpha": (M, 5), "gamma": (M, 6), "bias": (M, 6)}
    assert {w.name: tuple(w.shape) for w in conv.weights} == {
        "kernel": (3, 3, 2, 4), "alpha": (M, 2), "gamma": (M, 4)}


# ----- (c) random-sign initialiser -----------------------------------------------------------
def test_positive_random_sign_init_is_edward2s_exact_signs():
    """A positive random_sign_init draws exactly +1 or -1 (edward2's RandomSign); the
    fraction of -1 has s.d. 0.5 / sqrt(200,000) ~ 0.0011, so 0.01 is ~9 s.d."""
    values = to_np(sign_initializer(0.5, seed=0)((200_000,)))
    assert set(np.unique(values)) == {-1.0, 1.0}
    assert abs((values < 0).mean() - 0.5) < 0.01


def test_random_sign_spread_jitters_magnitudes_uniformly_and_independently_of_the_sign():
    values = to_np(RandomSign(0.5, seed=0)((200_000,)))
    negative, magnitude = values < 0, np.abs(values)
    assert abs(negative.mean() - 0.5) < 0.01
    assert magnitude.min() >= 0.5 and magnitude.max() <= 1.5
    assert magnitude.min() < 0.51 and magnitude.max() > 1.49  # the whole range is used
    # Uniform magnitudes: mean 1, s.d. of a mean over ~100,000 draws ~0.001; the sign is
    # drawn independently, so both signs have that mean.
    assert abs(magnitude[negative].mean() - 1) < 0.01
    assert abs(magnitude[~negative].mean() - 1) < 0.01


@pytest.mark.parametrize("positive_probability", [0.25, 1.0])
def test_random_sign_positive_probability(positive_probability):
    """P(+1) is the reference's random_sign_init: 1 flips no sign; magnitudes are unchanged."""
    values = to_np(RandomSign(seed=0, positive_probability=positive_probability)((200_000,)))
    assert abs((values > 0).mean() - positive_probability) < 0.01  # s.d. <= 0.0011.
    assert set(np.unique(np.abs(values))) == {1.0}
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match=r"positive_probability must be in \(0, 1\]"):
            RandomSign(positive_probability=bad)


def test_negative_random_sign_init_is_the_reference_normal_around_one():
    """The reference's -0.5 (its BatchEnsemble default, and so ours) draws N(1, 0.5^2): about
    2.3% negative (P(z < -2)); standard errors over 200,000 draws are ~0.001."""
    values = to_np(sign_initializer(-0.5, seed=0)((200_000,)))
    assert abs(values.mean() - 1) < 0.01 and abs(values.std() - 0.5) < 0.01
    assert abs((values < 0).mean() - 0.0228) < 0.003


@pytest.mark.parametrize("bad", [0.0, 1.5, float("nan")])
def test_invalid_random_sign_init_refused_by_initializer_and_layers(bad):
    message = r"random_sign_init must be non-zero and at most 1 \(> 0: the probability of \+1"
    for make in (lambda: sign_initializer(bad), lambda: DenseBatchEnsemble(3, 2, random_sign_init=bad),
                 lambda: Conv2DBatchEnsemble(3, 1, 2, random_sign_init=bad)):
        with pytest.raises(ValueError, match=message):
            make()


def test_layers_keep_their_sign_probability_through_their_config():
    layer = DenseBatchEnsemble(3, ensemble_size=2, random_sign_init=1.0, seed=4)
    layer.build((None, 5))
    assert np.all(to_np(layer.alpha) > 0) and np.all(to_np(layer.gamma) > 0)
    copy = DenseBatchEnsemble.from_config(layer.get_config())
    copy.build((None, 5))
    np.testing.assert_array_equal(to_np(copy.alpha), to_np(layer.alpha))


def test_random_sign_seeding_and_bad_spread():
    a, b = RandomSign(seed=1)((50,)), RandomSign(seed=1)((50,))
    np.testing.assert_array_equal(to_np(a), to_np(b))
    assert not np.array_equal(to_np(a), to_np(RandomSign(seed=2)((50,))))
    for spread in (-0.1, 1.0):
        with pytest.raises(ValueError, match=r"spread must be in \[0, 1\)"):
            RandomSign(spread=spread)


def test_default_fast_weights_are_independent_reference_normals_seeded_by_the_layer():
    def weights(seed):
        layer = DenseBatchEnsemble(64, ensemble_size=M, seed=seed)
        layer.build((None, 64))  # alpha and gamma of the same shape [M, 64]
        return [to_np(w) for w in (layer.kernel, layer.alpha, layer.gamma)]
    kernel, alpha, gamma = weights(0)
    for fast in (alpha, gamma):  # N(1, 0.5^2); over 192 draws the s.e. of the mean is ~0.036.
        assert abs(fast.mean() - 1) < 0.15 and abs(fast.std() - 0.5) < 0.1
    assert not np.allclose(alpha, gamma)  # independent draws
    for same, again in zip((kernel, alpha, gamma), weights(0)):
        np.testing.assert_array_equal(same, again)
    assert not any(np.array_equal(a, b) for a, b in zip((kernel, alpha, gamma), weights(1)))


def test_a_seeded_fast_weight_initializer_gives_alpha_and_gamma_independent_draws():
    layer = Conv2DBatchEnsemble(4, 1, ensemble_size=2, fast_weight_initializer=RandomSign(seed=9))
    layer.build((None, 3, 3, 4))
    assert not np.allclose(to_np(layer.alpha), to_np(layer.gamma))
    np.testing.assert_array_equal(to_np(layer.alpha), to_np(RandomSign(seed=9)((2, 4))))


# ----- (d) member m's fast weights only see member m's rows ----------------------------------
LAYERS = {
    "dense": (lambda: DenseBatchEnsemble(3, ensemble_size=M, seed=0), (M * B, 5)),
    "conv": (lambda: Conv2DBatchEnsemble(3, 3, ensemble_size=M, seed=0), (M * B, 5, 5, 2)),
}


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_member_gradients_depend_only_on_the_members_rows(kind):
    make, shape = LAYERS[kind]
    layer, rng = make(), np.random.default_rng(6)
    x = normal(rng, *shape)
    layer.build(x.shape)
    member_weights = [layer.alpha, layer.gamma, layer.bias]

    def gradients(inputs, rows=slice(None)):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.sin(layer(inputs)[rows]) ** 2)  # nonlinear in the rows
        return [g.numpy() for g in tape.gradient(loss, member_weights)]

    moved = x.copy()
    moved[B:2 * B] += normal(rng, B, *shape[1:])  # change member 1's rows only
    for before, after in zip(gradients(x), gradients(moved)):
        np.testing.assert_allclose(after[[0, 2]], before[[0, 2]], rtol=1e-6, atol=1e-7)
        assert np.abs(after[1] - before[1]).max() > 1e-3
    for grad in gradients(x, rows=slice(B, 2 * B)):  # loss on member 1's rows alone
        assert np.all(grad[[0, 2]] == 0) and np.any(grad[1] != 0)


# ----- regularisers ----------------------------------------------------------------------------
def test_regularizers_penalise_kernel_bias_and_both_fast_weights():
    layer = DenseBatchEnsemble(3, ensemble_size=2, kernel_regularizer=keras.regularizers.L2(0.1),
                               bias_regularizer=keras.regularizers.L2(0.2),
                               fast_weight_regularizer=keras.regularizers.L2(0.3))
    layer.build((None, 4))
    layer.bias.assign(np.ones((2, 3), np.float32))
    w = {v.name: to_np(v) for v in layer.weights}
    expected = (0.1 * (w["kernel"] ** 2).sum() + 0.2 * 6
                + 0.3 * ((w["alpha"] ** 2).sum() + (w["gamma"] ** 2).sum()))
    np.testing.assert_allclose(sum(float(loss) for loss in layer.losses), expected, rtol=1e-5)


# ----- (e) serialisation -----------------------------------------------------------------------
@pytest.mark.parametrize("layer", [
    DenseBatchEnsemble(4, ensemble_size=M, activation="relu",
                       fast_weight_initializer=RandomSign(0.3, seed=5),
                       kernel_regularizer=keras.regularizers.L2(1e-4),
                       fast_weight_regularizer=keras.regularizers.L2(1e-3), seed=7),
    Conv2DBatchEnsemble(4, (3, 1), ensemble_size=M, strides=(2, 1), padding="valid",
                        use_bias=False, kernel_initializer="he_uniform",
                        fast_weight_initializer="random_normal", seed=8),
], ids=["dense", "conv"])
def test_config_round_trip_rebuilds_the_same_layer(layer):
    x = normal(np.random.default_rng(7), M * 2, 5, 5, 2) if isinstance(
        layer, Conv2DBatchEnsemble) else normal(np.random.default_rng(7), M * 2, 5)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(clone) is type(layer) and clone.get_config() == layer.get_config()
    # Seeded initialisers: the config alone reproduces the initial weights and outputs.
    np.testing.assert_array_equal(to_np(clone(x)), to_np(layer(x)))
    for a, b in zip(layer.weights, clone.weights):
        np.testing.assert_array_equal(to_np(a), to_np(b))


def test_model_with_batchensemble_layers_saves_and_loads(tmp_path):
    model = keras.Sequential([keras.Input((6, 6, 2)), Conv2DBatchEnsemble(3, 3, M, seed=1),
                              keras.layers.Flatten(), DenseBatchEnsemble(2, M, seed=2)])
    x = normal(np.random.default_rng(8), M * 2, 6, 6, 2)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")  # no custom_objects needed
    np.testing.assert_array_equal(to_np(loaded(x)), to_np(model(x)))


# ----- (f) bad batches and arguments --------------------------------------------------------
@pytest.mark.parametrize("make,row_shape", [
    (lambda: DenseBatchEnsemble(2, ensemble_size=3), (5,)),
    (lambda: Conv2DBatchEnsemble(2, 3, ensemble_size=3), (4, 4, 1)),
])
def test_a_batch_not_divisible_by_ensemble_size_raises(make, row_shape):
    with pytest.raises(ValueError, match=r"batch size \(7\) must be divisible by ensemble_size=3"):
        make()(np.zeros((7, *row_shape), np.float32))  # at build
    layer = make()
    layer(np.zeros((6, *row_shape), np.float32))
    with pytest.raises(ValueError, match=r"batch size \(4\) must be divisible"):
        layer(np.zeros((4, *row_shape), np.float32))  # at a later call


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="ensemble_size"):
        DenseBatchEnsemble(2, ensemble_size=0)
    with pytest.raises(ValueError, match="units"):
        DenseBatchEnsemble(0, ensemble_size=2)
    with pytest.raises(ValueError, match="padding"):
        Conv2DBatchEnsemble(2, 3, ensemble_size=2, padding="causal")
    with pytest.raises(ValueError, match="kernel_size"):
        Conv2DBatchEnsemble(2, (3, 3, 3), ensemble_size=2)


# ----- (g) JAX and PyTorch ------------------------------------------------------------------------
BACKEND_PROGRAM = """
import numpy as np, keras
from uncertainty_baselines.layers import Conv2DBatchEnsemble, DenseBatchEnsemble
M, B = 3, 2
rng = np.random.default_rng(0)
images = rng.normal(size=(M * B, 6, 6, 2)).astype("float32")
conv = Conv2DBatchEnsemble(4, 3, M, strides=2, padding="same", seed=0)
dense = DenseBatchEnsemble(3, M, seed=1)
features = keras.ops.reshape(conv(images), (M * B, -1))
out = keras.ops.convert_to_numpy(dense(features))
w = {l.name + "/" + v.name: keras.ops.convert_to_numpy(v) for l in (conv, dense) for v in l.weights}
k, r, s = (w[conv.name + "/" + n] for n in ("kernel", "alpha", "gamma"))
for m in range(M):  # NumPy/plain-Conv2D oracle for member m
    plain = keras.layers.Conv2D(4, 3, strides=2, padding="same")
    plain.build((B, 6, 6, 2))
    plain.set_weights([k * r[m][None, None, :, None] * s[m][None, None, None, :],
                       w[conv.name + "/bias"][m]])
    h = keras.ops.convert_to_numpy(plain(images[m * B:(m + 1) * B])).reshape(B, -1)
    dk, dr, ds, db = (w[dense.name + "/" + n] for n in ("kernel", "alpha", "gamma", "bias"))
    expected = (h * dr[m]) @ dk * ds[m] + db[m]
    np.testing.assert_allclose(out[m * B:(m + 1) * B], expected, rtol=1e-4, atol=1e-4)
# One compiled training step: gradients reach the fast weights.
inputs = keras.Input((6, 6, 2))
model = keras.Model(inputs, dense(keras.layers.Flatten()(conv(inputs))))
model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
alpha = keras.ops.convert_to_numpy(conv.alpha)
model.train_on_batch(images, np.zeros((M * B, 3), "float32"))
assert not np.allclose(keras.ops.convert_to_numpy(conv.alpha), alpha)
print("ok", keras.backend.backend())
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_batchensemble_layers_on_backend(backend):
    run_on_backend(BACKEND_PROGRAM, backend)
