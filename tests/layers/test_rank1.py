"""Rank-1 Bayesian layers: the plain keras layer as the one-member, unit-factor,
noise-free case, each member against a plain-layer oracle with its factors, the law of the
per-example factor samples (Gaussian and Cauchy), the closed-form KLs against NumPy and a
Monte-Carlo estimate, serialisation, and both new layer families (rank-1 and
heteroscedastic) on the JAX and PyTorch backends."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from backend_run import run_on_backend
from uncertainty_baselines.layers import (Conv2DRank1, DenseRank1, RandomSign,
                                          rank1_kl)
from uncertainty_baselines.layers.rank1 import REFERENCE_INIT_STDDEV
from uncertainty_baselines.layers.variational import inverse_softplus

M, B = 3, 4  # members, examples per member


def to_np(x) -> np.ndarray:
    return keras.ops.convert_to_numpy(x)


def normal(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.normal(size=shape).astype(np.float32)


def softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x.astype(np.float64))


def member_rows(array: np.ndarray, m: int, rows: int = B) -> np.ndarray:
    """Member m's rows of a member-major batch."""
    return array[m * rows:(m + 1) * rows]


def plain_conv(kernel: np.ndarray, bias: np.ndarray, strides: int, padding: str,
               x: np.ndarray) -> np.ndarray:
    """keras.layers.Conv2D with the given kernel and bias, applied to x."""
    conv = keras.layers.Conv2D(kernel.shape[-1], kernel.shape[:2], strides=strides,
                               padding=padding)
    conv.build(x.shape)
    conv.set_weights([kernel, bias])
    return to_np(conv(x))


# ----- (a) one member, unit factors, no noise: the plain keras layer --------------------------
# Deterministic mode, or sampling with a scale (1e-30) too small to move a float32 factor.
NOISE_FREE = [dict(deterministic=True), dict(init_stddev=1e-30)]


@pytest.mark.parametrize("noise_free", NOISE_FREE, ids=["deterministic", "zero_scale"])
def test_dense_with_one_member_unit_factors_and_no_noise_is_a_dense_layer(noise_free):
    rng = np.random.default_rng(0)
    x, bias = normal(rng, 7, 5), normal(rng, 4)
    layer = DenseRank1(4, ensemble_size=1, activation="tanh", loc_initializer="ones",
                       **noise_free)
    layer.build(x.shape)
    layer.bias.assign(bias[None])
    plain = keras.layers.Dense(4, activation="tanh")
    plain.build(x.shape)
    plain.set_weights([to_np(layer.kernel), bias])
    np.testing.assert_allclose(to_np(layer(x)), to_np(plain(x)), rtol=0, atol=1e-6)


@pytest.mark.parametrize("noise_free", NOISE_FREE, ids=["deterministic", "zero_scale"])
@pytest.mark.parametrize("strides,padding", [(1, "same"), (2, "valid")])
def test_conv_with_one_member_unit_factors_and_no_noise_is_a_conv2d(noise_free, strides,
                                                                     padding):
    rng = np.random.default_rng(1)
    x, bias = normal(rng, 2, 7, 7, 3), normal(rng, 4)
    layer = Conv2DRank1(4, (3, 2), ensemble_size=1, strides=strides, padding=padding,
                        loc_initializer="ones", **noise_free)
    layer.build(x.shape)
    layer.bias.assign(bias[None])
    expected = plain_conv(to_np(layer.kernel), bias, strides, padding, x)
    np.testing.assert_allclose(to_np(layer(x)), expected, rtol=0, atol=1e-6)


# ----- (b) member m is the plain layer with kernel diag(alpha_m) W diag(gamma_m), bias b_m ----
def test_each_dense_member_uses_its_factor_locations_and_bias():
    rng = np.random.default_rng(2)
    x = normal(rng, B, 5)
    tiled = np.tile(x, (M, 1))  # every member sees the same rows
    layer = DenseRank1(6, ensemble_size=M, activation="relu", deterministic=True, seed=3)
    layer.build(tiled.shape)
    layer.bias.assign(normal(rng, M, 6))
    out = to_np(layer(tiled))
    kernel, a, g, bias = (to_np(w) for w in (layer.kernel, layer.alpha_loc, layer.gamma_loc,
                                              layer.bias))
    for m in range(M):
        expected = np.maximum(x @ (np.diag(a[m]) @ kernel @ np.diag(g[m])) + bias[m], 0)
        np.testing.assert_allclose(member_rows(out, m), expected, rtol=1e-5, atol=1e-5)
    # Distinct random-sign factors give distinct members on identical rows.
    assert not np.allclose(member_rows(out, 0), member_rows(out, 1), atol=1e-3)


def test_each_conv_member_uses_its_factor_locations_and_bias():
    rng = np.random.default_rng(4)
    x = normal(rng, M * B, 6, 6, 3)
    layer = Conv2DRank1(5, 3, ensemble_size=M, strides=2, deterministic=True,
                        loc_initializer=RandomSign(0.5, seed=1), seed=5)
    layer.build(x.shape)
    layer.bias.assign(normal(rng, M, 5))
    out = to_np(layer(x))
    kernel, a, g, bias = (to_np(w) for w in (layer.kernel, layer.alpha_loc, layer.gamma_loc,
                                              layer.bias))
    for m in range(M):
        member_kernel = kernel * a[m][None, None, :, None] * g[m][None, None, None, :]
        expected = plain_conv(member_kernel, bias[m], 2, "same", member_rows(x, m))
        np.testing.assert_allclose(member_rows(out, m), expected, rtol=1e-5, atol=1e-5)


def test_member_bias_is_added_to_the_members_rows_only():
    rng = np.random.default_rng(5)
    x = np.tile(normal(rng, B, 4), (M, 1))
    layer = DenseRank1(3, ensemble_size=M, loc_initializer="ones", deterministic=True)
    layer.build(x.shape)
    bias = np.arange(M * 3, dtype=np.float32).reshape(M, 3) * 10
    layer.bias.assign(bias)
    out = to_np(layer(x))
    shared = to_np(x[:B] @ to_np(layer.kernel))
    for m in range(M):
        np.testing.assert_allclose(member_rows(out, m), shared + bias[m], rtol=0, atol=1e-4)


# ----- (c) the per-example factor samples follow the posterior --------------------------------
ROWS = 4000  # examples per member for the sampling laws


def factor_probe(distribution: str, side: str, loc: np.ndarray, scale: np.ndarray,
                 seed: int = 0) -> DenseRank1:
    """A DenseRank1 whose output on a row of ones is the `side` factor's sample: kernel I,
    no bias, the other factor fixed at 1 (scale 1e-30)."""
    m, d = loc.shape
    layer = DenseRank1(d, ensemble_size=m, use_bias=False, distribution=distribution,
                       seed=seed)
    layer.build((None, d))
    other = "gamma" if side == "alpha" else "alpha"
    layer.kernel.assign(np.eye(d, dtype=np.float32))
    getattr(layer, f"{side}_loc").assign(loc)
    getattr(layer, f"{side}_rho").assign(np.log(np.expm1(scale)).astype(np.float32))
    getattr(layer, f"{other}_loc").assign(np.ones((m, d), np.float32))
    getattr(layer, f"{other}_rho").assign(np.full((m, d), inverse_softplus(1e-30), np.float32))
    return layer


LOC = np.array([[1.0, -1.0, 0.5], [2.0, 0.0, -0.3]], np.float32)
SCALE = np.array([[0.1, 0.2, 0.3], [0.05, 0.5, 1.0]], np.float32)


@pytest.mark.parametrize("side", ["alpha", "gamma"])
def test_gaussian_factor_samples_have_the_posterior_mean_and_stddev(side):
    layer = factor_probe("normal", side, LOC, SCALE)
    ones = np.ones((2 * ROWS, 3), np.float32)
    first, second = to_np(layer(ones, training=True)), to_np(layer(ones, training=True))
    assert not np.allclose(first, second)  # fresh samples on every call
    assert not np.allclose(to_np(layer(ones)), first)  # and at inference
    for m in range(2):
        samples = member_rows(first, m, ROWS).astype(np.float64)
        # Mean: s.e. scale / sqrt(ROWS); stddev: s.e. ~ scale / sqrt(2 ROWS). 5 s.e. each.
        np.testing.assert_array_less(np.abs(samples.mean(0) - LOC[m]),
                                     5 * SCALE[m] / np.sqrt(ROWS))
        np.testing.assert_array_less(np.abs(samples.std(0) - SCALE[m]),
                                     5 * SCALE[m] / np.sqrt(2 * ROWS))


def test_cauchy_factor_samples_have_the_posterior_quartiles_and_are_clipped():
    layer = factor_probe("cauchy", "alpha", LOC, SCALE)
    out = to_np(layer(np.ones((2 * ROWS, 3), np.float32))).astype(np.float64)
    for m in range(2):
        q1, median, q3 = np.percentile(member_rows(out, m, ROWS), [25, 50, 75], axis=0)
        # Sample quantiles' s.e.: sqrt(p (1 - p) / n) / density; for Cauchy(l, s) that is
        # (pi / 2) s / sqrt(n) at the median and (sqrt(3) pi / 2) s / sqrt(n) at a quartile.
        se_median, se_quartile = np.pi / 2, np.sqrt(3) * np.pi / 2
        bound = 5 * SCALE[m] / np.sqrt(ROWS)
        np.testing.assert_array_less(np.abs(median - LOC[m]), se_median * bound)
        np.testing.assert_array_less(np.abs(q1 - (LOC[m] - SCALE[m])), se_quartile * bound)
        np.testing.assert_array_less(np.abs(q3 - (LOC[m] + SCALE[m])), se_quartile * bound)
    # Heavy tails reach the reference's clip at +-10 (P(|x - l| > 9) ~ 7% for scale 1).
    assert np.abs(out).max() == pytest.approx(10.0)


def test_sampling_is_repeatable_by_seed_and_deterministic_mode_is_not_random():
    def outputs(**kwargs):
        layer = factor_probe("normal", "alpha", LOC, SCALE, **kwargs)
        return to_np(layer(np.ones((20, 3), np.float32)))
    np.testing.assert_array_equal(outputs(seed=4), outputs(seed=4))
    assert not np.allclose(outputs(seed=4), outputs(seed=5))
    layer = DenseRank1(3, ensemble_size=2, deterministic=True)
    x = normal(np.random.default_rng(6), 8, 5)
    np.testing.assert_array_equal(to_np(layer(x)), to_np(layer(x)))


# ----- (d) KL(q || p) in closed form ----------------------------------------------------------
def randomise_posteriors(layer, rng: np.random.Generator) -> None:
    for name in ("alpha", "gamma"):
        loc = getattr(layer, f"{name}_loc")
        loc.assign(normal(rng, *loc.shape))
        getattr(layer, f"{name}_rho").assign(normal(rng, *loc.shape) - 2)


def factor_posteriors(layer):
    """(loc, scale) of alpha and gamma, float64."""
    return [(to_np(getattr(layer, f"{n}_loc")).astype(np.float64),
             softplus(to_np(getattr(layer, f"{n}_rho")))) for n in ("alpha", "gamma")]


def gaussian_kl(loc, scale, prior_mean, prior_stddev):
    return (np.log(prior_stddev / scale)
            + (scale ** 2 + (loc - prior_mean) ** 2) / (2 * prior_stddev ** 2) - 0.5)


def cauchy_kl(loc, scale, prior_loc, prior_scale):
    return np.log(((scale + prior_scale) ** 2 + (loc - prior_loc) ** 2)
                  / (4 * scale * prior_scale))


@pytest.mark.parametrize("distribution,closed_form", [("normal", gaussian_kl),
                                                      ("cauchy", cauchy_kl)])
@pytest.mark.parametrize("make", [lambda **kw: DenseRank1(4, M, **kw),
                                  lambda **kw: Conv2DRank1(4, 3, M, **kw)],
                         ids=["dense", "conv"])
def test_kl_is_the_closed_form_of_the_layers_own_weights(make, distribution, closed_form):
    layer = make(distribution=distribution, prior_mean=0.8, prior_stddev=0.3)
    layer.build((None, 5, 5, 2) if isinstance(layer, Conv2DRank1) else (None, 5))
    randomise_posteriors(layer, np.random.default_rng(7))
    expected = sum(closed_form(loc, scale, 0.8, 0.3).sum()
                   for loc, scale in factor_posteriors(layer))
    np.testing.assert_allclose(float(layer.kl()), expected, rtol=1e-5)


@pytest.mark.parametrize("distribution", ["normal", "cauchy"])
def test_kl_is_zero_when_the_posterior_is_the_prior(distribution):
    layer = DenseRank1(3, M, distribution=distribution, loc_initializer="ones",
                       init_stddev=0.1)  # the default prior: location 1, scale 0.1
    layer.build((None, 4))
    assert abs(float(layer.kl())) < 1e-4


def test_cauchy_kl_agrees_with_a_monte_carlo_estimate():
    rng = np.random.default_rng(8)
    layer = DenseRank1(1, 1, distribution="cauchy", prior_mean=1.0, prior_stddev=0.1)
    layer.build((None, 1))
    layer.alpha_loc.assign([[1.3]])
    layer.alpha_rho.assign([[inverse_softplus(0.2)]])
    layer.gamma_loc.assign([[0.9]])
    layer.gamma_rho.assign([[inverse_softplus(0.05)]])

    def log_cauchy(x, loc, scale):
        return -np.log(np.pi * scale * (1 + ((x - loc) / scale) ** 2))

    estimate, variance = 0.0, 0.0
    for loc, scale in factor_posteriors(layer):
        x = loc + scale * rng.standard_cauchy(200_000)
        terms = log_cauchy(x, loc, scale) - log_cauchy(x, 1.0, 0.1)  # bounded: finite variance
        estimate += terms.mean()
        variance += terms.var() / terms.size
    assert abs(float(layer.kl()) - estimate) < 5 * np.sqrt(variance)
    assert np.sqrt(variance) < 0.01 * estimate  # the check has power


def test_rank1_kl_sums_every_rank1_layer_of_nested_models():
    inner = keras.Sequential([keras.Input((4, 4, 2)), Conv2DRank1(3, 3, 2, seed=1),
                              keras.layers.Flatten(), DenseRank1(5, 2, seed=2)])
    outer = keras.Sequential([keras.Input((4, 4, 2)), inner,
                              DenseRank1(2, 2, distribution="cauchy", seed=3)])
    layers = [inner.layers[0], inner.layers[2], outer.layers[1]]
    np.testing.assert_allclose(float(rank1_kl(outer)),
                               sum(float(layer.kl()) for layer in layers), rtol=1e-6)
    with pytest.raises(ValueError, match="no DenseRank1 or Conv2DRank1"):
        rank1_kl(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))


@pytest.mark.parametrize("distribution", ["normal", "cauchy"])
def test_gradients_reach_every_weight_through_the_samples_and_the_kl(distribution):
    layer = Conv2DRank1(3, 3, M, distribution=distribution, seed=0)
    x = normal(np.random.default_rng(11), M * B, 5, 5, 2)
    layer.build(x.shape)
    randomise_posteriors(layer, np.random.default_rng(12))  # no location at the prior mean
    weights = [layer.kernel, layer.bias, layer.alpha_loc, layer.alpha_rho, layer.gamma_loc,
               layer.gamma_rho]
    with tf.GradientTape(persistent=True) as tape:
        data_term, kl = tf.reduce_sum(tf.sin(layer(x))), layer.kl()
    assert all(np.any(to_np(g) != 0) for g in tape.gradient(data_term, weights))
    assert all(np.all(to_np(g) != 0) for g in tape.gradient(kl, weights[2:]))


# ----- (e) initial weights --------------------------------------------------------------------
def test_default_initial_factors_are_seeded_random_signs_with_the_reference_scale():
    def weights(seed):
        layer = Conv2DRank1(64, 3, ensemble_size=M, seed=seed)
        layer.build((None, 5, 5, 64))
        return {w.name: to_np(w) for w in layer.weights}
    w = weights(0)
    for side in ("alpha", "gamma"):
        assert set(np.unique(w[f"{side}_loc"])) == {-1.0, 1.0}  # random_sign_init 0.5
        assert 0.35 < (w[f"{side}_loc"] < 0).mean() < 0.65  # 192 signs: s.d. ~0.036
        np.testing.assert_allclose(softplus(w[f"{side}_rho"]), REFERENCE_INIT_STDDEV, rtol=1e-5)
    assert not np.array_equal(w["alpha_loc"], w["gamma_loc"])  # independent draws
    np.testing.assert_array_equal(w["bias"], 0)
    for name, value in weights(0).items():
        np.testing.assert_array_equal(value, w[name])
    assert not np.array_equal(weights(1)["alpha_loc"], w["alpha_loc"])


def test_regularizers_penalise_kernel_and_member_biases_only():
    layer = DenseRank1(3, ensemble_size=2, kernel_regularizer=keras.regularizers.L2(0.1),
                       bias_regularizer=keras.regularizers.L2(0.2))
    layer.build((None, 4))
    layer.bias.assign(np.ones((2, 3), np.float32))
    expected = 0.1 * (to_np(layer.kernel) ** 2).sum() + 0.2 * 6
    np.testing.assert_allclose(sum(float(loss) for loss in layer.losses), expected, rtol=1e-5)


# ----- (f) serialisation, bad batches and arguments -------------------------------------------
@pytest.mark.parametrize("layer", [
    DenseRank1(4, M, activation="relu", distribution="cauchy", prior_mean=0.5,
               prior_stddev=0.2, init_stddev=0.01, loc_initializer=RandomSign(0.3, seed=5),
               kernel_regularizer=keras.regularizers.L2(1e-4), max_perturbation=3.0,
               deterministic=True, seed=7),
    Conv2DRank1(4, (3, 1), M, strides=(2, 1), padding="valid", use_bias=False,
                kernel_initializer="he_uniform", deterministic=True, seed=8),
], ids=["dense", "conv"])
def test_config_round_trip_rebuilds_the_same_layer(layer):
    rng = np.random.default_rng(9)
    x = normal(rng, M * 2, 5, 5, 2) if isinstance(layer, Conv2DRank1) else normal(rng, M * 2, 5)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(clone) is type(layer) and clone.get_config() == layer.get_config()
    np.testing.assert_array_equal(to_np(clone(x)), to_np(layer(x)))
    np.testing.assert_array_equal(to_np(clone.kl()), to_np(layer.kl()))


def test_model_with_rank1_layers_saves_and_loads(tmp_path):
    model = keras.Sequential([keras.Input((6, 6, 2)), Conv2DRank1(3, 3, M, seed=1),
                              keras.layers.Flatten(), DenseRank1(2, M, seed=2)])
    x = normal(np.random.default_rng(10), M * 2, 6, 6, 2)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")  # no custom_objects needed
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(to_np(a), to_np(b))
    assert loaded(x).shape == (M * 2, 2)
    np.testing.assert_allclose(float(rank1_kl(loaded)),
                               float(rank1_kl(model)), rtol=1e-6)


def test_a_batch_not_divisible_by_ensemble_size_raises():
    with pytest.raises(ValueError, match=r"batch size \(7\) must be divisible by ensemble_size=3"):
        DenseRank1(2, 3)(np.zeros((7, 5), np.float32))
    layer = Conv2DRank1(2, 3, 3)
    layer(np.zeros((6, 4, 4, 1), np.float32))
    with pytest.raises(ValueError, match=r"batch size \(4\) must be divisible"):
        layer(np.zeros((4, 4, 4, 1), np.float32))


@pytest.mark.parametrize("kwargs,message", [
    (dict(ensemble_size=0), "ensemble_size"), (dict(distribution="laplace"), "distribution"),
    (dict(prior_stddev=0.0), "prior_stddev"), (dict(init_stddev=-1.0), "init_stddev"),
    (dict(max_perturbation=0.0), "max_perturbation"), (dict(units=0), "units")])
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DenseRank1(**{"units": 2, "ensemble_size": 2, **kwargs})


def test_bad_conv_arguments_raise():
    with pytest.raises(ValueError, match="padding"):
        Conv2DRank1(2, 3, 2, padding="causal")
    with pytest.raises(ValueError, match="kernel_size"):
        Conv2DRank1(2, (3, 3, 3), 2)


# ----- (g) JAX and PyTorch: every new layer (rank-1 and heteroscedastic) ----------------------
BACKEND_PROGRAM = """
import numpy as np, keras
from uncertainty_baselines.layers import (Conv2DRank1, DenseRank1, HeteroscedasticSoftmax,
                                          rank1_kl)
M, B = 2, 3
x = np.random.default_rng(0).normal(size=(B, 6, 6, 2)).astype("float32")
# A rank-1 trunk (Gaussian conv, Cauchy dense) on the member-major tiled batch and a
# heteroscedastic head: every new layer in one model, sampling inside a compiled predict.
inputs = keras.Input((6, 6, 2))
tiled = keras.layers.Lambda(lambda t: keras.ops.tile(t, (M, 1, 1, 1)))(inputs)
conv = Conv2DRank1(4, 3, M, strides=2, seed=0)
dense = DenseRank1(5, M, distribution="cauchy", seed=1)
h = dense(keras.layers.Flatten()(conv(tiled)))
head = HeteroscedasticSoftmax(3, num_factors=2, num_mc_samples=50, seed=2)
model = keras.Model(inputs, head(h))
a, b = (model.predict_on_batch(x) for _ in range(2))
assert a.shape == (M * B, 3) and not np.allclose(a, b)  # fresh samples per call
np.testing.assert_allclose(np.exp(a).sum(-1), 1, rtol=1e-5)
def closed_form_kl(layer):  # NumPy, default prior: location 1, scale 0.1
    total = 0.0
    for side in ("alpha", "gamma"):
        loc = keras.ops.convert_to_numpy(getattr(layer, side + "_loc")).astype("float64")
        s = np.logaddexp(0, keras.ops.convert_to_numpy(getattr(layer, side + "_rho")))
        total += (np.log(0.1 / s) + (s**2 + (loc - 1)**2) / 0.02 - 0.5).sum() \
            if layer.distribution == "normal" else \
            np.log(((s + 0.1)**2 + (loc - 1)**2) / (0.4 * s)).sum()
    return total
kl = float(keras.ops.convert_to_numpy(rank1_kl(model)))
np.testing.assert_allclose(kl, closed_form_kl(conv) + closed_form_kl(dense), rtol=1e-5)
print("ok", keras.backend.backend())
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_rank1_and_heteroscedastic_layers_on_backend(backend):
    run_on_backend(BACKEND_PROGRAM, backend)
