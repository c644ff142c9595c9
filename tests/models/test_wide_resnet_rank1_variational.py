"""The rank-1 BNN and variational Wide ResNets: with unit factors the rank-1 WRN is the plain
WRN of the same seed, every conv and the head are Bayesian, the model KL is the sum of the
layers' closed forms, the variational WRN samples, seeding and bad arguments."""
import keras
import numpy as np
import pytest

import uncertainty_baselines as ub
from uncertainty_baselines.layers import Conv2DFlipout, Conv2DRank1, DenseFlipout, DenseRank1

TINY = {"input_shape": (8, 8, 3), "depth": 10, "width_multiplier": 1, "num_classes": 5}


def images(n=3, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 8, 8, 3)).astype(np.float32)


def weights_named(model, name):
    return [v for v in model.weights if v.name == name]


def layers_of(model, types):
    """Layers of `types` in `model`, nested models included."""
    found = []
    for layer in model.layers:
        found += layers_of(layer, types) if isinstance(layer, keras.Model) else [layer] * isinstance(layer, types)
    return found


def plain_weight_layers(seed=0):
    return layers_of(ub.models.get("wide_resnet", seed=seed, **TINY), (keras.layers.Conv2D, keras.layers.Dense))


def softplus(rho):
    return np.logaddexp(0.0, np.asarray(rho, np.float64))


def test_rank1_wrn_with_unit_factors_is_the_plain_wrn_of_the_same_seed():
    plain = ub.models.get("wide_resnet", seed=3, **TINY)
    rank1 = ub.models.get("wide_resnet_rank1", seed=3, ensemble_size=2, **TINY)
    for a, b in zip(weights_named(plain, "kernel"), weights_named(rank1, "kernel"), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # One initialiser stream.
    expected = np.asarray(plain(images(), training=False))
    assert not np.allclose(np.asarray(rank1(images(), training=False))[:, 0], expected)  # Random-sign factors.
    for v in rank1.weights:  # Factor locations 1, scales 0 (softplus(-1e4) is 0 in float32).
        if v.name in ("alpha_loc", "gamma_loc", "alpha_rho", "gamma_rho"):
            v.assign(np.full(v.shape, 1.0 if v.name.endswith("loc") else -1e4, np.float32))
    out = np.asarray(rank1(images(), training=False))
    assert out.shape == (3, 2, 5)
    for member in range(2):
        np.testing.assert_allclose(out[:, member], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("distribution", ["normal", "cauchy"])
def test_rank1_kl_is_the_sum_of_every_layers_closed_form(distribution):
    model = ub.models.get("wide_resnet_rank1", ensemble_size=3, distribution=distribution, prior_mean=0.9,
                          prior_stddev=0.2, init_stddev=0.05, **TINY)
    layers = layers_of(model, (Conv2DRank1, DenseRank1))
    assert len(layers) == len(plain_weight_layers()) and isinstance(layers[-1], DenseRank1)  # Every conv, the head.
    expected = 0.0
    for layer in layers:
        for loc, rho in ((layer.alpha_loc, layer.alpha_rho), (layer.gamma_loc, layer.gamma_rho)):
            s, offset, p = softplus(rho), np.asarray(loc, np.float64) - 0.9, 0.2
            np.testing.assert_allclose(s, 0.05, rtol=1e-5)
            assert set(np.unique(np.asarray(loc))) == {-1.0, 1.0}  # Random-sign locations.
            if distribution == "normal":
                expected += np.sum(np.log(p / s) + (s ** 2 + offset ** 2) / (2 * p ** 2) - 0.5)
            else:
                expected += np.sum(np.log(((s + p) ** 2 + offset ** 2) / (4 * s * p)))
    np.testing.assert_allclose(float(ub.layers.rank1_kl(model)), expected, rtol=1e-5)


def test_rank1_members_differ_and_each_pass_samples():
    model = ub.models.get("wide_resnet_rank1", ensemble_size=2, **TINY)
    first, second = (np.asarray(model(images(), training=False)) for _ in range(2))
    assert not np.allclose(first[:, 0], first[:, 1]) and not np.array_equal(first, second)


def test_variational_wrn_samples_its_kernel_means_follow_the_seed_and_its_kl_is_the_closed_form():
    model = ub.models.get("wide_resnet_variational", seed=2, prior_stddev=0.2, init_stddev=0.01, **TINY)
    layers = layers_of(model, (Conv2DFlipout, DenseFlipout))
    assert len(layers) == len(plain_weight_layers()) and isinstance(layers[-1], DenseFlipout)
    for layer, plain in zip(layers, plain_weight_layers(seed=2), strict=True):
        np.testing.assert_array_equal(np.asarray(layer.kernel_loc), np.asarray(plain.kernel))
    first, second = (np.asarray(model(images(), training=False)) for _ in range(2))
    assert first.shape == (3, 5) and not np.array_equal(first, second)  # Sampled at inference.
    s = np.concatenate([softplus(layer.kernel_rho).ravel() for layer in layers])
    mu = np.concatenate([np.asarray(layer.kernel_loc, np.float64).ravel() for layer in layers])
    tied = np.sum(np.log(0.2 / s) + s ** 2 / (2 * 0.2 ** 2) - 0.5)  # The prior's mean is mu.
    kl = float(ub.layers.flipout_kl(model, tied_mean=True))
    assert np.isfinite(kl) and kl > 0
    np.testing.assert_allclose(kl, tied, rtol=1e-5)
    np.testing.assert_allclose(float(ub.layers.flipout_kl(model)), tied + np.sum(mu ** 2) / (2 * 0.2 ** 2), rtol=1e-5)


@pytest.mark.parametrize("name", ["wide_resnet_rank1", "wide_resnet_variational"])
def test_a_build_is_a_function_of_its_seed(name):
    kwargs = {**TINY, "l2": 1e-4, "l2_overrides": {"bn": 0.0}, "initializer": "glorot_uniform"}
    a, b, c = (ub.models.get(name, seed=s, **kwargs) for s in (1, 1, 2))
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a.weights, b.weights, strict=True))
    first_kernel = [np.asarray(next(v for v in m.weights if v.name.startswith("kernel"))) for m in (a, c)]
    assert not np.array_equal(*first_kernel)
    np.testing.assert_array_equal(np.asarray(a(images(), training=False)), np.asarray(b(images(), training=False)))


@pytest.mark.parametrize("name,kwargs,message", [
    ("wide_resnet_rank1", {"ensemble_size": 0}, "ensemble_size must be >= 1"),
    ("wide_resnet_rank1", {"distribution": "laplace"}, "distribution must be one of"),
    ("wide_resnet_rank1", {"prior_stddev": 0.0}, "prior_stddev must be > 0"),
    ("wide_resnet_variational", {"init_stddev": -1.0}, "init_stddev must be > 0"),
])
def test_bad_arguments_raise(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ub.models.get(name, **TINY, **kwargs)
