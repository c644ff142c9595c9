"""Flipout layers: with sigma -> 0 they are the plain Dense/Conv2D with kernel mu; the KL
against a NumPy closed form; each example's output law N(x mu, x^2 sigma^2); decorrelated
perturbations within a batch; sampling, seeding, gradients, serialisation; JAX and PyTorch."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from backend_run import run_on_backend
from uncertainty_baselines.layers import Conv2DFlipout, DenseFlipout, DenseVariational, flipout_kl



def to_np(x) -> np.ndarray:
    return keras.ops.convert_to_numpy(x)


def normal(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.normal(size=shape).astype(np.float32)


def plain_layer(layer: DenseFlipout | Conv2DFlipout, kernel: np.ndarray,
                bias: np.ndarray | None = None, activation=None) -> keras.layers.Layer:
    """keras.layers.Dense or Conv2D shaped as `layer`, with the given kernel (and bias)."""
    use_bias = bias is not None
    if isinstance(layer, DenseFlipout):
        plain = keras.layers.Dense(layer.units, activation=activation, use_bias=use_bias)
        plain.build((None, kernel.shape[0]))
    else:
        plain = keras.layers.Conv2D(layer.filters, layer.kernel_size, strides=layer.strides,
                                    padding=layer.padding, activation=activation,
                                    use_bias=use_bias)
        plain.build((None, None, None, kernel.shape[2]))
    plain.set_weights([kernel] + ([bias] if use_bias else []))
    return plain


def randomise_posterior(layer, rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    """Random kernel means and stddevs spread log-uniformly over [low, high]; returns sigma."""
    sigma = np.exp(rng.uniform(np.log(low), np.log(high), size=layer.kernel_rho.shape))
    layer.kernel_loc.assign(normal(rng, *layer.kernel_loc.shape))
    layer.kernel_rho.assign(np.log(np.expm1(sigma)).astype(np.float32))
    return sigma.astype(np.float32)


# Small layers of each kind, with an input batch of 2 examples.
LAYERS = {
    "dense": (lambda **kw: DenseFlipout(64, **kw), (2, 6)),
    "conv": (lambda **kw: Conv2DFlipout(32, 3, **kw), (2, 3, 3, 2)),
}


# ----- (a) sigma -> 0: the plain layer with kernel mu -----------------------------------------
@pytest.mark.parametrize("make,shape", [
    (lambda: DenseFlipout(4, activation="tanh", seed=1), (5, 3)),
    (lambda: DenseFlipout(4, seed=1), (5, 2, 3)),  # [B, T, D] inputs
    (lambda: Conv2DFlipout(4, (3, 2), activation="relu", seed=2), (2, 6, 6, 3)),
    (lambda: Conv2DFlipout(4, 3, strides=2, padding="valid", seed=2), (2, 7, 7, 3)),
], ids=["dense", "dense-3d", "conv-same", "conv-stride2-valid"])
def test_with_vanishing_stddev_the_layer_is_the_plain_layer_with_kernel_mu(make, shape):
    rng = np.random.default_rng(0)
    layer, x = make(), normal(rng, *shape)
    layer.build(x.shape)
    layer.kernel_rho.assign(np.full(layer.kernel_rho.shape, -100.0, np.float32))  # sigma ~ 4e-44
    layer.bias.assign(normal(rng, *layer.bias.shape))
    plain = plain_layer(layer, to_np(layer.kernel_loc), to_np(layer.bias),
                        activation=layer.activation)
    out = to_np(layer(x))
    assert out.shape == tuple(layer.compute_output_shape(x.shape))
    np.testing.assert_allclose(out, to_np(plain(x)), rtol=1e-6, atol=1e-6)


def test_initial_posterior_follows_the_reference():
    dense, conv = DenseFlipout(8, seed=0), Conv2DFlipout(8, 3, use_bias=False, seed=0)
    dense.build((None, 200))
    conv.build((None, 5, 5, 200))
    assert dense.prior_stddev == conv.prior_stddev == 0.1
    for layer in (dense, conv):
        np.testing.assert_allclose(to_np(keras.ops.softplus(layer.kernel_rho)), 1e-3, rtol=1e-4)
    assert {w.name for w in conv.weights} == {"kernel_loc", "kernel_rho"}
    # Means as the plain layers': Glorot-uniform (Dense), He-normal (conv), seeded.
    limit = np.sqrt(6 / (200 + 8))
    loc = to_np(dense.kernel_loc)
    assert np.abs(loc).max() <= limit and np.abs(loc).max() > 0.9 * limit
    np.testing.assert_allclose(to_np(conv.kernel_loc).std(), np.sqrt(2 / (9 * 200)), rtol=0.05)
    np.testing.assert_array_equal(
        to_np(conv.kernel_loc), to_np(keras.initializers.HeNormal(seed=0)((3, 3, 200, 8))))


# ----- (b) KL -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_kl_is_the_closed_form_of_the_layers_own_weights(kind):
    make, shape = LAYERS[kind]
    layer, rng = make(prior_stddev=0.3), np.random.default_rng(1)
    layer.build(shape)
    layer.kernel_loc.assign(normal(rng, *layer.kernel_loc.shape))
    layer.kernel_rho.assign(normal(rng, *layer.kernel_rho.shape) - 2)
    mu = to_np(layer.kernel_loc).astype(np.float64)
    s = np.logaddexp(0.0, to_np(layer.kernel_rho).astype(np.float64))  # softplus
    expected = np.sum(np.log(0.3 / s) + (s ** 2 + mu ** 2) / (2 * 0.3 ** 2) - 0.5)
    np.testing.assert_allclose(float(layer.kl()), expected, rtol=1e-5)
    tied = np.sum(np.log(0.3 / s) + s ** 2 / (2 * 0.3 ** 2) - 0.5)  # Prior mean = mu: no mu^2 term.
    np.testing.assert_allclose(float(layer.kl(tied_mean=True)), tied, rtol=1e-5)
    # At the prior (mu = 0, sigma = prior stddev) the KL vanishes.
    layer.kernel_loc.assign(np.zeros(layer.kernel_loc.shape, np.float32))
    layer.kernel_rho.assign(np.full(layer.kernel_rho.shape, np.log(np.expm1(0.3)), np.float32))
    assert abs(float(layer.kl())) < 1e-3


def test_flipout_kl_sums_every_flipout_layer_of_a_model_nested_ones_included():
    inner = keras.Sequential([keras.Input((4, 4, 2)), Conv2DFlipout(3, 3, seed=1),
                              keras.layers.Flatten()])
    head = DenseFlipout(2, seed=2)
    inputs = keras.Input((4, 4, 2))
    model = keras.Model(inputs, head(keras.layers.Dense(5)(inner(inputs))))
    np.testing.assert_allclose(float(flipout_kl(model)),
                               float(inner.layers[0].kl()) + float(head.kl()), rtol=1e-6)
    np.testing.assert_allclose(float(flipout_kl(model, tied_mean=True)),
                               float(inner.layers[0].kl(True)) + float(head.kl(True)), rtol=1e-6)
    with pytest.raises(ValueError, match="no DenseFlipout or Conv2DFlipout"):
        flipout_kl(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))


# ----- (c) each example's output law: N(x mu, x^2 sigma^2), as the plain reparameterisation's ---
CALLS = 200


def standardised_draws(kind: str, x: np.ndarray, seed: int):
    """CALLS outputs of a layer with spread-out stddevs, standardised by the expected mean
    (plain layer with kernel mu on x) and variance (plain layer with kernel sigma^2 on
    x^2); also returns the expected variances."""
    make, _ = LAYERS[kind]
    layer, rng = make(use_bias=False, seed=seed), np.random.default_rng(seed)
    layer.build(x.shape)
    sigma = randomise_posterior(layer, rng, 0.05, 2.0)
    mean = to_np(plain_layer(layer, to_np(layer.kernel_loc))(x))
    var = to_np(plain_layer(layer, sigma ** 2)(x ** 2))
    draws = np.stack([to_np(layer(x)) for _ in range(CALLS)])
    return (draws - mean) / np.sqrt(var), var


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_each_examples_output_has_mean_x_mu_and_variance_x2_sigma2(kind):
    x = normal(np.random.default_rng(2), *LAYERS[kind][1])  # two different examples
    z, var = standardised_draws(kind, x, seed=3)
    # Per example and output position, the units (filters) are independent N(0, 1) draws
    # under the claim (independent kernel columns), and so are the calls: pool them. Bounds
    # are 5 standard errors of a mean and of a variance over n draws.
    units = z.shape[-1]
    pooled = z.reshape(CALLS, x.shape[0], -1, units).transpose(1, 2, 0, 3).reshape(
        x.shape[0], -1, CALLS * units)  # [example, position, draws]
    n = pooled.shape[-1]
    assert np.abs(pooled.mean(-1)).max() < 5 / np.sqrt(n)
    assert np.abs(pooled.var(-1) - 1).max() < 5 * np.sqrt(2 / n)
    # Each output's variance separately, over outputs whose variances span > 100x.
    assert var.max() / var.min() > 100
    assert np.abs(z.var(0) - 1).max() < 5 * np.sqrt(2 / (CALLS - 1))


# ----- (d) the Flipout property: two examples in one call get uncorrelated perturbations -------
@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_identical_examples_in_one_batch_have_uncorrelated_outputs(kind):
    row = normal(np.random.default_rng(4), *LAYERS[kind][1][1:])
    z, _ = standardised_draws(kind, np.stack([row, row]), seed=5)
    # mean(z1 * z2) estimates the correlation of the two examples' outputs; under Flipout
    # it is 0, with E[(z1 z2)^2] <= 3, so the bound is 5 * sqrt(3 / n) (per output position,
    # pooled over calls and independent units).
    units = z.shape[-1]
    products = (z[:, 0] * z[:, 1]).reshape(CALLS, -1, units).transpose(1, 0, 2).reshape(
        -1, CALLS * units)
    assert np.abs(products.mean(-1)).max() < 5 * np.sqrt(3 / products.shape[-1])
    np.testing.assert_allclose((z[:, 0] ** 2).mean(), 1, atol=0.1)  # yet each one varies


def test_a_shared_weight_sample_would_correlate_them_fully():
    # The contrast: one reparameterised weight sample per call (DenseVariational) gives two
    # identical examples identical outputs, correlation 1.
    layer, x = DenseVariational(64, init_stddev=0.5, seed=0), np.ones((2, 6), np.float32)
    draws = np.stack([to_np(layer(x)) for _ in range(20)])
    np.testing.assert_array_equal(draws[:, 0], draws[:, 1])
    assert draws[:, 0].std(0).min() > 0.1


# ----- (e) sampling, seeding, gradients --------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_each_call_samples_in_training_and_at_inference(kind):
    make, shape = LAYERS[kind]
    layer, x = make(seed=0), normal(np.random.default_rng(6), *shape)
    layer.build(x.shape)
    mean = to_np(plain_layer(layer, to_np(layer.kernel_loc), to_np(layer.bias))(x))
    for training in (True, False):
        a, b = to_np(layer(x, training=training)), to_np(layer(x, training=training))
        assert not np.array_equal(a, b)
        # Default init stddev 1e-3: the samples stay close to the mean output.
        assert 0 < np.abs(a - mean).max() < 0.05


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_the_same_seed_repeats_weights_and_draws_another_seed_does_not(kind):
    make, shape = LAYERS[kind]
    x = normal(np.random.default_rng(7), *shape)

    def run(seed):
        layer = make(init_stddev=0.1, seed=seed)
        return [to_np(layer(x)) for _ in range(3)] + [to_np(layer.kernel_loc)]

    for a, b in zip(run(5), run(5)):
        np.testing.assert_array_equal(a, b)
    assert not any(np.array_equal(a, b) for a, b in zip(run(5), run(6)))


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_gradients_reach_the_means_and_the_stddevs_in_a_compiled_step(kind):
    make, shape = LAYERS[kind]
    layer = make(init_stddev=0.1, seed=0)
    x = normal(np.random.default_rng(8), *shape)
    layer.build(x.shape)
    signature = [tf.TensorSpec((None, *shape[1:]), tf.float32)]  # dynamic batch size

    @tf.function(input_signature=signature)
    def gradients(inputs):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(layer(inputs))) + layer.kl()
        return tape.gradient(loss, [layer.kernel_loc, layer.kernel_rho, layer.bias])

    first, second = ([g.numpy() for g in gradients(x)] for _ in range(2))
    for g in first:
        assert np.isfinite(g).all() and np.abs(g).max() > 0
    assert not np.array_equal(first[1], second[1])  # a fresh sample per compiled call


# ----- (f) serialisation and arguments ------------------------------------------------------------
@pytest.mark.parametrize("layer,shape", [
    (DenseFlipout(3, activation="relu", kernel_initializer="he_uniform",
                  kernel_regularizer=keras.regularizers.L2(1e-4), bias_regularizer="l2",
                  prior_stddev=0.2, init_stddev=0.01, seed=7), (2, 5)),
    (Conv2DFlipout(4, (3, 1), strides=(2, 1), padding="valid", use_bias=False,
                   kernel_initializer=keras.initializers.GlorotNormal(seed=3), seed=8),
     (2, 5, 5, 2)),
], ids=["dense", "conv"])
def test_config_round_trip_rebuilds_the_same_layer_and_draws(layer, shape):
    x = normal(np.random.default_rng(9), *shape)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(clone) is type(layer) and clone.get_config() == layer.get_config()
    np.testing.assert_array_equal(to_np(clone(x)), to_np(layer(x)))
    for a, b in zip(layer.weights, clone.weights):
        np.testing.assert_array_equal(to_np(a), to_np(b))


def test_a_saved_model_reloads_its_weights_and_replays_its_noise_from_the_seed(tmp_path):
    model = keras.Sequential([keras.Input((5, 5, 2)), Conv2DFlipout(3, 3, seed=1),
                              keras.layers.Flatten(), DenseFlipout(2, init_stddev=0.1, seed=2)])
    x = normal(np.random.default_rng(10), 2, 5, 5, 2)
    model(x)  # advances the noise state
    for layer in (model.layers[0], model.layers[2]):  # trained-looking weights
        layer.kernel_loc.assign(layer.kernel_loc * 2)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")  # no custom_objects needed
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(to_np(a), to_np(b))
    # The noise state is not a weight: a reloaded model draws its seed's stream afresh.
    fresh = keras.Sequential([keras.Input((5, 5, 2)), Conv2DFlipout(3, 3, seed=1),
                              keras.layers.Flatten(), DenseFlipout(2, init_stddev=0.1, seed=2)])
    fresh.set_weights(model.get_weights())
    np.testing.assert_array_equal(to_np(loaded(x)), to_np(fresh(x)))


def test_bad_arguments_raise():
    for make, match in [(lambda: DenseFlipout(0), "units"),
                        (lambda: DenseFlipout(2, prior_stddev=0.0), "prior_stddev"),
                        (lambda: Conv2DFlipout(2, 3, init_stddev=-1.0), "init_stddev"),
                        (lambda: Conv2DFlipout(0, 3), "filters"),
                        (lambda: Conv2DFlipout(2, 3, padding="causal"), "padding"),
                        (lambda: Conv2DFlipout(2, (3, 3, 3)), "kernel_size")]:
        with pytest.raises(ValueError, match=match):
            make()
    with pytest.raises(ValueError, match="channels"):
        Conv2DFlipout(2, 3)(np.zeros((2, 5, 5), np.float32))


# ----- (g) JAX and PyTorch ------------------------------------------------------------------------
BACKEND_PROGRAM = """
import numpy as np, keras
from uncertainty_baselines.layers import Conv2DFlipout, DenseFlipout, flipout_kl
images = np.random.default_rng(0).normal(size=(4, 6, 6, 2)).astype("float32")


def wrn_like(conv, dense):
    inputs = keras.Input((6, 6, 2))
    return keras.Model(inputs, dense(keras.layers.Flatten()(conv(inputs))))


conv, dense = Conv2DFlipout(3, 3, strides=2, seed=0), DenseFlipout(2, init_stddev=0.1, seed=1)
model = wrn_like(conv, dense)
p, q = (model.predict(images, verbose=0) for _ in range(2))  # compiled (jit) calls
assert p.shape == (4, 2) and not np.array_equal(p, q)  # a fresh sample per call
kl = float(flipout_kl(model))
assert np.isfinite(kl) and np.isclose(kl, float(conv.kl()) + float(dense.kl()), rtol=1e-6)
# sigma -> 0: the plain layers with kernel mu.
for layer in (conv, dense):
    layer.kernel_rho.assign(np.full(layer.kernel_rho.shape, -100.0, "float32"))
plain = wrn_like(keras.layers.Conv2D(3, 3, strides=2, padding="same"), keras.layers.Dense(2))
plain.set_weights([keras.ops.convert_to_numpy(v) for v in (conv.kernel_loc, conv.bias,
                                                            dense.kernel_loc, dense.bias)])
np.testing.assert_allclose(model.predict(images, verbose=0), plain.predict(images, verbose=0),
                           rtol=1e-5, atol=1e-5)
print("ok", keras.backend.backend())
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_flipout_layers_on_backend(backend):
    run_on_backend(BACKEND_PROGRAM, backend)
