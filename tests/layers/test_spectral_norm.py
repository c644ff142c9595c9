"""Spectral normalisation: the largest singular value of the normalised Dense kernel and of the
explicit matrix of the normalised convolution operator (NumPy SVD) against the bound, the
power-iteration state, the gradient through sigma, bias and activation, serialisation."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from uncertainty_baselines.layers import SpectralNormConv2D, SpectralNormDense


def to_np(x) -> np.ndarray:
    return keras.ops.convert_to_numpy(x)


def top_singular_value(matrix: np.ndarray) -> float:
    return float(np.linalg.svd(matrix.astype(np.float64), compute_uv=False)[0])


def dense(scale: float, bound: float, **kwargs) -> SpectralNormDense:
    """A bias-free 6 -> 4 layer whose raw kernel is N(0, scale^2), built."""
    layer = SpectralNormDense(4, norm_multiplier=bound, use_bias=False,
                              kernel_initializer=keras.initializers.RandomNormal(stddev=scale,
                                                                                 seed=1),
                              **kwargs)
    layer.build((None, 6))
    return layer


def converge(layer, inputs, calls: int = 60) -> None:
    for _ in range(calls):
        layer(inputs, training=True)


def conv_operator(layer, shape: tuple[int, int, int]) -> np.ndarray:
    """The explicit matrix of a bias-free conv layer at inference: row i = layer(e_i)."""
    size = int(np.prod(shape))
    basis = np.eye(size, dtype=np.float32).reshape(size, *shape)
    return to_np(layer(basis, training=False)).reshape(size, -1)


# ----- Dense ------------------------------------------------------------------------------------
@pytest.mark.parametrize("bound", [1.0, 6.0])
def test_dense_kernel_above_the_bound_is_scaled_to_it(bound):
    layer = dense(scale=5.0, bound=bound)
    raw = to_np(layer.kernel)
    assert top_singular_value(raw) > 2 * bound
    converge(layer, np.ones((2, 6), np.float32))
    # The kernel itself is what the layer applies: x = I gives it row by row.
    normalised = to_np(layer(np.eye(6, dtype=np.float32), training=False))
    sigma = top_singular_value(normalised)
    # Power iteration's |A v| is a lower estimate of sigma: the bound holds once converged.
    assert sigma == pytest.approx(bound, rel=1e-4)
    # A scalar multiple of the raw kernel (the direction is kept).
    np.testing.assert_allclose(normalised, raw * bound / top_singular_value(raw), rtol=1e-4,
                               atol=1e-6)


def test_dense_kernel_below_the_bound_is_unchanged():
    layer = dense(scale=0.1, bound=6.0)
    raw = to_np(layer.kernel)
    assert top_singular_value(raw) < 1.0
    x = np.random.default_rng(0).normal(size=(3, 6)).astype(np.float32)
    for training in (True, False):
        np.testing.assert_array_equal(to_np(layer(x, training=training)), x @ raw)


def test_dense_bias_and_activation_follow_the_normalised_kernel():
    layer = SpectralNormDense(3, norm_multiplier=1.0, activation="tanh",
                              bias_initializer="ones", kernel_initializer="ones")
    x = np.random.default_rng(1).normal(size=(4, 5)).astype(np.float32)
    converge(layer, x, calls=5)  # The all-ones kernel has rank 1: exact after one step.
    kernel = np.ones((5, 3), np.float32) / np.sqrt(15.0)
    np.testing.assert_allclose(to_np(layer(x)), np.tanh(x @ kernel + 1.0), rtol=1e-5, atol=1e-6)


# ----- Conv2D: the convolution operator, not the reshaped kernel ----------------------------------
CONV_CASES = {
    "k3_s1_same": dict(kernel_size=3, strides=1, padding="same"),
    "k3_s2_same": dict(kernel_size=3, strides=2, padding="same"),
    "k3_s2_valid": dict(kernel_size=3, strides=2, padding="valid"),
    "k2_s2_same": dict(kernel_size=2, strides=2, padding="same"),
    "k3_dilated": dict(kernel_size=3, strides=1, padding="same", dilation_rate=2),
    "k1_s2": dict(kernel_size=1, strides=2, padding="same"),
}
IMAGE = (6, 6, 2)


def conv(bound: float, scale: float, power_iterations: int = 20, **kwargs) -> SpectralNormConv2D:
    init = keras.initializers.RandomNormal(stddev=scale, seed=2)
    layer = SpectralNormConv2D(3, norm_multiplier=bound, use_bias=False, kernel_initializer=init,
                               power_iterations=power_iterations, **kwargs)
    layer.build((None, *IMAGE))
    return layer


def plain_conv_operator(kernel: np.ndarray, **kwargs) -> np.ndarray:
    plain = keras.layers.Conv2D(kernel.shape[-1], use_bias=False, **kwargs)
    plain.build((None, *IMAGE))
    plain.set_weights([kernel])
    return conv_operator(plain, IMAGE)


@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_conv_operator_above_the_bound_is_scaled_to_it(case):
    kwargs = CONV_CASES[case]
    layer = conv(bound=1.5, scale=2.0, **kwargs)
    raw_operator = plain_conv_operator(to_np(layer.kernel), **kwargs)
    assert top_singular_value(raw_operator) > 3.0
    converge(layer, np.zeros((1, *IMAGE), np.float32), calls=10)  # 200 power iterations
    operator = conv_operator(layer, IMAGE)
    assert top_singular_value(operator) == pytest.approx(1.5, rel=1e-3)
    np.testing.assert_allclose(operator, raw_operator * 1.5 / top_singular_value(raw_operator),
                               rtol=1e-3, atol=1e-5)


def test_the_conv_bound_is_on_the_operator_not_the_reshaped_kernel():
    # The oracle above is meaningful: here the kernel matrix [kh*kw*C_in, filters] and the
    # operator norms differ by far more than the test's tolerance.
    kwargs = CONV_CASES["k3_s1_same"]
    layer = conv(bound=1.5, scale=2.0, **kwargs)
    kernel = to_np(layer.kernel)
    operator_sigma = top_singular_value(plain_conv_operator(kernel, **kwargs))
    matrix_sigma = top_singular_value(kernel.reshape(-1, kernel.shape[-1]))
    assert abs(operator_sigma / matrix_sigma - 1) > 0.2


@pytest.mark.parametrize("case", ["k3_s1_same", "k3_s2_valid"])
def test_conv_operator_below_the_bound_is_unchanged(case):
    kwargs = CONV_CASES[case]
    layer = conv(bound=6.0, scale=0.05, **kwargs)
    raw_operator = plain_conv_operator(to_np(layer.kernel), **kwargs)
    assert top_singular_value(raw_operator) < 1.0
    converge(layer, np.zeros((1, *IMAGE), np.float32), calls=2)
    np.testing.assert_allclose(conv_operator(layer, IMAGE), raw_operator, rtol=0, atol=1e-6)


def test_conv_bias_and_activation_follow_the_normalised_kernel():
    layer = SpectralNormConv2D(4, 3, strides=2, padding="same", activation="relu",
                               norm_multiplier=1.0, bias_initializer="ones",
                               kernel_initializer=keras.initializers.RandomNormal(stddev=1.0,
                                                                                  seed=3))
    x = np.random.default_rng(2).normal(size=(2, *IMAGE)).astype(np.float32)
    converge(layer, x, calls=3)
    plain = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")
    plain.build(x.shape)
    plain.set_weights([to_np(layer.normalized_kernel()), np.ones(4, np.float32)])
    np.testing.assert_allclose(to_np(layer(x)), to_np(plain(x)), rtol=1e-5, atol=1e-5)


# ----- power-iteration state and gradient ---------------------------------------------------------
def test_u_v_advance_only_in_training_and_k_iterations_per_call_equal_k_calls():
    x = np.ones((2, *IMAGE), np.float32)
    one, three = (conv(1.0, 1.0, power_iterations=k, **CONV_CASES["k3_s2_same"])
                  for k in (1, 3))  # the same seed: the same kernel, u and v
    assert {w.name: w.trainable for w in one.weights} == {"kernel": True, "v": False, "u": False}
    assert one.v.shape == (1, 6, 6, 2) and one.u.shape == (1, 3, 3, 3)
    before = [to_np(w) for w in (one.u, one.v)]
    one(x, training=False)
    one(x)
    for a, w in zip(before, (one.u, one.v)):
        np.testing.assert_array_equal(to_np(w), a)
    for _ in range(3):
        one(x, training=True)
    three(x, training=True)
    for a, b in zip((one.u, one.v), (three.u, three.v)):
        np.testing.assert_allclose(to_np(a), to_np(b), rtol=1e-5, atol=1e-6)
        assert np.linalg.norm(to_np(a)) == pytest.approx(1.0, rel=1e-5)
    assert not np.allclose(to_np(one.u), before[0])


def test_gradient_flows_through_sigma_with_u_v_held_constant():
    layer = dense(scale=3.0, bound=1.0)
    x = np.random.default_rng(3).normal(size=(5, 6)).astype(np.float32)
    weights = np.random.default_rng(4).normal(size=(5, 4)).astype(np.float32)
    converge(layer, x, calls=3)  # not converged: sigma = |v W| < the top singular value
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, training=False) * weights)
    grad = tape.gradient(loss, layer.kernel.value)
    # W_n = c W / sigma, sigma = |v W|: dL/dW = (c / sigma)(G - <G, W> v^T u / sigma), with
    # G = dL/dW_n = x^T weights and u = v W / sigma (Miyato et al. 2018).
    kernel, v = to_np(layer.kernel).astype(np.float64), to_np(layer.v).astype(np.float64)
    sigma = np.linalg.norm(v @ kernel)
    u = v @ kernel / sigma
    g = x.T.astype(np.float64) @ weights
    expected = (g - np.sum(g * kernel) * v.T @ u / sigma) / sigma
    np.testing.assert_allclose(grad.numpy(), expected, rtol=1e-4, atol=1e-5)


# ----- serialisation and arguments ----------------------------------------------------------------
def test_config_round_trip_and_saved_model_keep_the_power_iteration_state(tmp_path):
    layer = SpectralNormConv2D(3, 3, strides=2, padding="same", norm_multiplier=6.0,
                               power_iterations=2, seed=5, use_bias=False)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(clone) is SpectralNormConv2D and clone.get_config() == layer.get_config()
    assert clone.get_config()["norm_multiplier"] == 6.0
    model = keras.Sequential([keras.Input(IMAGE), layer, keras.layers.Flatten(),
                              SpectralNormDense(2, norm_multiplier=2.0, seed=6)])
    x = np.random.default_rng(5).normal(size=(3, *IMAGE)).astype(np.float32)
    model(x, training=True)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(to_np(loaded(x)), to_np(model(x)))
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(to_np(a), to_np(b))


def test_bad_arguments_and_shapes_raise():
    for kwargs in ({"norm_multiplier": 0.0}, {"power_iterations": 0}):
        with pytest.raises(ValueError, match="norm_multiplier|power_iterations"):
            SpectralNormDense(2, **kwargs)
    with pytest.raises(ValueError, match="channels_last and groups=1"):
        SpectralNormConv2D(2, 3, data_format="channels_first")
    with pytest.raises(ValueError, match="known height, width"):
        SpectralNormConv2D(2, 3).build((None, None, None, 3))
