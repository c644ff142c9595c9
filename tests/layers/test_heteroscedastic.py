"""Heteroscedastic softmax head: exactly softmax(mu / T) without noise, the Monte-Carlo
estimate against a large-sample NumPy reference built from the layer's own mu, V and d,
the output as normalised log-probabilities for a cross-entropy from logits, seeding,
weights, regularisers and serialisation. (JAX and PyTorch: tests/layers/test_rank1.py runs
both new layer families there.)"""
import keras
import numpy as np
import pytest
import tensorflow as tf

from uncertainty_baselines.layers import HeteroscedasticSoftmax

K, R, D, B = 4, 2, 3, 3  # classes, factors, features, examples


def to_np(x) -> np.ndarray:
    return keras.ops.convert_to_numpy(x)


def normal(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> np.ndarray:
    return (scale * rng.normal(size=shape)).astype(np.float32)


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(-1, keepdims=True)


def set_dense(dense: keras.layers.Dense, kernel: np.ndarray, bias: np.ndarray) -> None:
    dense.kernel.assign(kernel)
    dense.bias.assign(bias)


def silence_noise(layer: HeteroscedasticSoftmax) -> None:
    """V = 0 and d = softplus(-100) ~ 4e-44 (with min_scale 0): no noise in float32."""
    if layer.factor_layer is not None:
        set_dense(layer.factor_layer, np.zeros((D, K * R), np.float32), np.zeros(K * R, np.float32))
    set_dense(layer.diag_layer, np.zeros((D, K), np.float32), np.full(K, -100.0, np.float32))


def noise_parameters(layer: HeteroscedasticSoftmax, x: np.ndarray):
    """mu [B, K], V [B, K, R] (or None) and d [B, K] computed in NumPy from the weights."""
    def dense(sub):
        return x.astype(np.float64) @ to_np(sub.kernel) + to_np(sub.bias)
    v = None if layer.factor_layer is None else dense(layer.factor_layer).reshape(-1, K, R)
    d = np.logaddexp(0.0, dense(layer.diag_layer)) + layer.min_scale
    return dense(layer.loc_layer), v, d


# ----- (a) without noise the head is softmax(mu / T) ------------------------------------------
@pytest.mark.parametrize("num_factors", [0, R])
@pytest.mark.parametrize("temperature", [1.3, 0.4])
def test_without_noise_the_output_is_the_tempered_softmax_of_the_location(num_factors,
                                                                          temperature):
    x = normal(np.random.default_rng(0), B, D)
    layer = HeteroscedasticSoftmax(K, num_factors=num_factors, temperature=temperature,
                                   num_mc_samples=7, min_scale=0.0)
    layer.build(x.shape)
    silence_noise(layer)
    mu = noise_parameters(layer, x)[0]
    out = to_np(layer(x))
    np.testing.assert_allclose(np.exp(out), softmax(mu / temperature), rtol=0, atol=1e-6)


# ----- (b) the MC estimate agrees with a large-sample reference from the layer's mu, V, d -----
def reference_samples(mu, v, d, temperature, n, rng):
    """n samples of softmax((mu + V z + d e) / T), [n, B, K], float64."""
    logits = mu + d * rng.standard_normal((n, *mu.shape))
    if v is not None:
        logits = logits + np.einsum("bkr,nbr->nbk", v, rng.standard_normal((n, mu.shape[0], R)))
    return softmax(logits / temperature)


@pytest.mark.parametrize("num_factors,diag_bias", [(R, -100.0), (0, 2.0), (R, 1.0)],
                         ids=["low_rank_only", "diagonal_only", "both"])
def test_monte_carlo_estimate_matches_a_large_sample_reference(num_factors, diag_bias):
    rng = np.random.default_rng(1)
    x = normal(rng, B, D)
    samples = 2000
    layer = HeteroscedasticSoftmax(K, num_factors=num_factors, num_mc_samples=samples,
                                   min_scale=0.0, seed=2)
    layer.build(x.shape)
    set_dense(layer.loc_layer, normal(rng, D, K), normal(rng, K))
    set_dense(layer.diag_layer, normal(rng, D, K, scale=0.3), np.full(K, diag_bias, np.float32))
    if num_factors:
        set_dense(layer.factor_layer, normal(rng, D, K * R, scale=0.8), normal(rng, K * R))
    mu, v, d = noise_parameters(layer, x)
    reference = reference_samples(mu, v, d, layer.temperature, 200_000, rng)
    expected, spread = reference.mean(0), reference.std(0)
    # Each example's estimate is a mean of `samples` independent draws of its own logits
    # (the draws are shared across the batch, not across samples): s.e. spread / sqrt(samples);
    # the reference's s.e. is 10x smaller. 4.5 s.e. over 12 entries: by the union bound, which
    # needs no independence between the correlated entries, a false alarm < 12 * 6.8e-6 ~ 1e-4.
    standard_error = spread * np.sqrt(1 / samples + 1 / reference.shape[0])
    estimate = np.exp(to_np(layer(x)).astype(np.float64))
    np.testing.assert_array_less(np.abs(estimate - expected), 4.5 * standard_error)
    # The check has power: the noise moves the probabilities by many standard errors.
    assert np.abs(expected - softmax(mu / layer.temperature)).max() > 10 * standard_error.max()


def test_draws_are_shared_across_the_batch_as_the_reference():
    """Identical examples in one batch get identical estimates, and an example's estimate
    does not depend on its batch-mates: the normal draws are [S, K] and [S, R], not per
    example (edward2's share_samples_across_batch=True, used by the reference WRN)."""
    rng = np.random.default_rng(11)
    x = normal(rng, B, D)
    layer = HeteroscedasticSoftmax(K, num_factors=R, num_mc_samples=50, seed=4)
    layer.build(x.shape)
    set_dense(layer.diag_layer, normal(rng, D, K), np.ones(K, np.float32))  # sizeable noise
    out = to_np(layer(np.concatenate([x, x[:1]])))
    np.testing.assert_array_equal(out[0], out[B])
    alone = HeteroscedasticSoftmax(K, num_factors=R, num_mc_samples=50, seed=4)
    alone.build(x.shape)
    alone.set_weights(layer.get_weights())
    np.testing.assert_allclose(to_np(alone(x[:1]))[0], out[0], rtol=1e-5, atol=1e-6)
    # Not for want of noise: the next call draws afresh and moves the estimate.
    assert not np.allclose(to_np(layer(x))[0], out[0], rtol=1e-3)


# ----- (c) the output: normalised log-probabilities, usable as logits -------------------------
def test_output_is_log_probabilities_fit_for_a_cross_entropy_from_logits():
    rng = np.random.default_rng(3)
    x, labels = normal(rng, B, D), np.array([0, 3, 1])
    out = to_np(HeteroscedasticSoftmax(K, num_mc_samples=50, seed=1)(x))
    np.testing.assert_allclose(np.log(np.exp(out).sum(-1)), 0, atol=1e-6)
    loss = to_np(keras.losses.sparse_categorical_crossentropy(labels, out, from_logits=True))
    np.testing.assert_allclose(loss, -out[np.arange(B), labels], rtol=1e-5, atol=1e-6)


def test_a_single_sample_gives_normalised_log_probabilities():
    x = normal(np.random.default_rng(4), B, D)
    out = to_np(HeteroscedasticSoftmax(K, num_mc_samples=1, temperature=0.7, seed=3)(x))
    np.testing.assert_allclose(np.exp(out).sum(-1), 1, rtol=1e-6)
    assert np.all(out < 0)


# ----- (d) seeding: repeatable by seed, fresh samples per call, in training and at inference ---
def test_seeded_calls_are_repeatable_and_every_call_samples():
    x = normal(np.random.default_rng(5), B, D)

    def layer(seed):
        return HeteroscedasticSoftmax(K, num_mc_samples=20, seed=seed)
    a, b = layer(6), layer(6)
    np.testing.assert_array_equal(to_np(a(x)), to_np(b(x)))  # same weights, same noise
    np.testing.assert_array_equal(to_np(a(x, training=True)), to_np(b(x, training=True)))
    assert not np.allclose(to_np(a(x)), to_np(a(x)))  # fresh noise at inference
    assert not np.allclose(to_np(a(x, training=True)), to_np(a(x, training=True)))
    assert not np.allclose(to_np(layer(7)(x)), to_np(layer(6)(x)))


# ----- (e) weights, initialisers, regularisers ------------------------------------------------
def test_weights_are_three_dense_maps_and_no_factor_layer_without_factors():
    layer = HeteroscedasticSoftmax(K, num_factors=R)
    layer.build((None, D))
    assert {w.path.split("/", 1)[1]: tuple(w.shape) for w in layer.weights} == {
        "loc/kernel": (D, K), "loc/bias": (K,), "factors/kernel": (D, K * R),
        "factors/bias": (K * R,), "diag/kernel": (D, K), "diag/bias": (K,)}
    diagonal = HeteroscedasticSoftmax(K, num_factors=0)
    diagonal.build((None, D))
    assert diagonal.factor_layer is None and len(diagonal.weights) == 4


def test_kernels_are_independent_seeded_draws_and_an_initializer_object_is_used():
    def kernels(**kwargs):
        layer = HeteroscedasticSoftmax(K, num_factors=1, **kwargs)
        layer.build((None, 64))
        return [to_np(d.kernel) for d in (layer.loc_layer, layer.factor_layer, layer.diag_layer)]
    loc, factors, diag = kernels(seed=0)
    assert not np.allclose(loc, factors) and not np.allclose(loc, diag)
    for a, b in zip(kernels(seed=0), (loc, factors, diag)):
        np.testing.assert_array_equal(a, b)
    init = keras.initializers.HeNormal(seed=11)
    loc, factors, diag = kernels(kernel_initializer=init)
    np.testing.assert_array_equal(loc, to_np(init((64, K))))
    assert not np.allclose(loc, diag)


def test_regularizers_penalise_every_kernel_and_bias():
    layer = HeteroscedasticSoftmax(K, num_factors=R, kernel_regularizer=keras.regularizers.L2(0.1),
                                   bias_regularizer=keras.regularizers.L2(0.2))
    layer.build((None, D))
    for dense in (layer.loc_layer, layer.factor_layer, layer.diag_layer):
        dense.bias.assign(np.ones(dense.bias.shape, np.float32))
    expected = sum(0.1 * (to_np(d.kernel) ** 2).sum() + 0.2 * d.bias.shape[0]
                   for d in (layer.loc_layer, layer.factor_layer, layer.diag_layer))
    np.testing.assert_allclose(sum(float(loss) for loss in layer.losses), expected, rtol=1e-5)


def test_gradients_reach_every_weight():
    layer = HeteroscedasticSoftmax(K, num_factors=R, num_mc_samples=30)
    x = normal(np.random.default_rng(8), B, D)
    layer.build(x.shape)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
            np.array([0, 1, 2]), layer(x), from_logits=True))
    grads = tape.gradient(loss, layer.trainable_weights)
    assert len(grads) == 6 and all(np.any(to_np(g) != 0) for g in grads)


# ----- (f) serialisation and arguments --------------------------------------------------------
def test_config_round_trip_rebuilds_the_same_layer():
    layer = HeteroscedasticSoftmax(K, num_factors=3, temperature=0.9, num_mc_samples=40,
                                   min_scale=0.01, kernel_initializer="he_uniform",
                                   kernel_regularizer=keras.regularizers.L2(1e-4), seed=9)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(clone) is type(layer) and clone.get_config() == layer.get_config()
    x = normal(np.random.default_rng(9), B, D)
    np.testing.assert_array_equal(to_np(clone(x)), to_np(layer(x)))


def test_model_with_the_head_saves_and_loads(tmp_path):
    model = keras.Sequential([keras.Input((D,)), keras.layers.Dense(5),
                              HeteroscedasticSoftmax(K, num_mc_samples=10, seed=1)])
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")  # no custom_objects needed
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(to_np(a), to_np(b))
    assert loaded(normal(np.random.default_rng(10), B, D)).shape == (B, K)


@pytest.mark.parametrize("kwargs,message", [
    (dict(temperature=0.0), "temperature must be > 0"),
    (dict(num_factors=-1), "num_factors must be >= 0"),
    (dict(num_mc_samples=0), "num_mc_samples must be >= 1"),
    (dict(min_scale=-1e-3), "min_scale must be >= 0"),
    (dict(num_classes=0), "num_classes must be >= 1")])
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        HeteroscedasticSoftmax(**{"num_classes": K, **kwargs})


def test_inputs_must_be_a_batch_of_feature_vectors():
    with pytest.raises(ValueError, match=r"expects inputs \[batch, features\]"):
        HeteroscedasticSoftmax(K)(np.zeros((2, 3, D), np.float32))
