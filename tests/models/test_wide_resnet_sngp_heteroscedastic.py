"""SNGP and heteroscedastic Wide ResNets: bounded conv operators, GP logits in training and
mean-field logits at inference, the epoch reset of the precision, the heteroscedastic head
without noise as softmax(mu / T), backbone kwargs and seeding."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import uncertainty_baselines as ub
from uncertainty_baselines.layers import (HeteroscedasticSoftmax, MeanFieldGaussianProcess,
                                          RandomFeatureGaussianProcess, SpectralNormConv2D,
                                          mean_field_logits)

TINY = {"input_shape": [8, 8, 3], "depth": 10, "width_multiplier": 1, "num_classes": 5}


def to_np(x) -> np.ndarray:
    return keras.ops.convert_to_numpy(x)


def images(n: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 8, 8, 3)).astype(np.float32)


def sngp(**kwargs) -> keras.Model:
    return ub.models.get("wide_resnet_sngp", **{**TINY, "num_inducing": 32, "gp_input_dim": 16, **kwargs})


def head_probe(model: keras.Model) -> keras.Model:
    """The model's head input and output from one forward pass."""
    return keras.Model(model.input, [model.layers[-1].input, model.output])


def operator_norm(layer: SpectralNormConv2D, kernel) -> float:
    """The exact spectral norm of the layer's convolution with `kernel` on its input shape."""
    shape = layer.input.shape[1:]
    n = int(np.prod(shape))
    basis = np.eye(n, dtype=np.float32).reshape(n, *shape)
    matrix = to_np(layer.convolution_op(basis, kernel)).reshape(n, -1)
    return float(np.linalg.svd(matrix, compute_uv=False)[0])


def test_every_sngp_conv_is_spectrally_normalised_to_its_bound():
    bound = 1.0
    model = sngp(spec_norm_bound=bound, dropout_rate=0.0, input_shape=[4, 4, 3])
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 9 and all(isinstance(c, SpectralNormConv2D) for c in convs)
    train_call = tf.function(lambda x: model(x, training=True))
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 3)).astype(np.float32)
    for _ in range(20):  # One power iteration per call on the fixed kernels.
        train_call(x)
    raw = [operator_norm(c, c.kernel) for c in convs]
    normalised = [operator_norm(c, c.normalized_kernel()) for c in convs]
    assert max(raw) > 1.5 * bound  # Not vacuous: the He-normal kernels exceed the bound.
    # Power iteration approaches sigma from below, so the bound holds up to its convergence.
    np.testing.assert_array_less(normalised, bound * 1.05)
    assert min(normalised) > 0.9 * min(bound, min(raw))


def test_sngp_outputs_gp_logits_in_training_and_their_mean_field_at_inference():
    model = sngp(gp_mean_field_factor=3.0, dropout_rate=0.0)
    gp = model.layers[-1]
    assert isinstance(gp, MeanFieldGaussianProcess) and not gp.scale_features
    assert gp.length_scale == 20.0 and gp.input_projection_dim == 16 and gp.num_inducing == 32
    probe, x = head_probe(model), images()
    features, out = probe(x, training=True)
    np.testing.assert_allclose(to_np(out), to_np(gp.random_features(features) @ gp.kernel), atol=1e-5)
    features, out = probe(x, training=False)
    logits, variance = RandomFeatureGaussianProcess.call(gp, features, training=False)
    assert to_np(variance).min() > 0
    np.testing.assert_allclose(to_np(out), to_np(mean_field_logits(logits, variance, 3.0)), atol=1e-5)
    assert not np.allclose(to_np(out), to_np(logits), atol=1e-3)  # The mean field shrinks them.


def test_training_accumulates_the_precision_and_the_epoch_reset_restores_ridge_times_identity():
    model = sngp(gp_ridge_penalty=2.0)
    gp = model.layers[-1]
    model(images(), training=True)
    assert not np.allclose(to_np(gp.precision), 2.0 * np.eye(32))
    assert ub.layers.reset_covariances(model) == 1
    np.testing.assert_array_equal(to_np(gp.precision), 2.0 * np.eye(32, dtype=np.float32))


def test_sngp_has_filterwise_dropout_per_residual_branch_off_at_inference():
    model = sngp(dropout_rate=0.5)
    drops = [layer for layer in model.layers if isinstance(layer, keras.layers.SpatialDropout2D)]
    assert len(drops) == 3 and all(d.rate == 0.5 for d in drops)  # One per residual block.
    x = images()
    np.testing.assert_array_equal(to_np(model(x, training=False)), to_np(model(x, training=False)))
    assert not any(isinstance(layer, keras.layers.SpatialDropout2D) for layer in sngp(dropout_rate=0.0).layers)


def heteroscedastic(**kwargs) -> keras.Model:
    return ub.models.get("wide_resnet_heteroscedastic", **{**TINY, "num_mc_samples": 64, **kwargs})


def test_heteroscedastic_wrn_without_noise_is_the_tempered_softmax_of_its_location():
    model = heteroscedastic(temperature=0.7, num_factors=3)
    head = model.layers[-1]
    assert isinstance(head, HeteroscedasticSoftmax) and head.num_factors == 3 and head.num_mc_samples == 64
    for dense in (head.factor_layer, head.diag_layer):
        dense.kernel.assign(np.zeros(dense.kernel.shape, np.float32))
    head.factor_layer.bias.assign(np.zeros(head.factor_layer.bias.shape, np.float32))
    head.diag_layer.bias.assign(np.full(head.diag_layer.bias.shape, -1e4, np.float32))  # softplus -> 0
    features, out = head_probe(model)(images(), training=False)
    location = to_np(head.loc_layer(features)) / 0.7
    expected = np.exp(location - location.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    # Only the min_scale (1e-3) noise is left.
    np.testing.assert_allclose(np.exp(to_np(out)), expected, atol=1e-3)


def test_heteroscedastic_wrn_outputs_normalised_log_probabilities_that_are_sampled():
    model, x = heteroscedastic(), images()
    out = to_np(model(x, training=False))
    np.testing.assert_allclose(np.log(np.exp(out).sum(-1)), 0.0, atol=1e-5)
    assert not np.array_equal(out, to_np(model(x, training=False)))


@pytest.mark.parametrize("name,regularised", [("wide_resnet_sngp", 9 + 1),
                                              ("wide_resnet_heteroscedastic", 9 + 3)])
def test_backbone_kwargs_apply_and_the_seed_fixes_every_weight(name, regularised):
    kwargs = {**TINY, "l2": 1e-3, "l2_overrides": {"bn": 0.0, "dense_bias": 0.0}, "seed": 4,
              "initializer": "glorot_uniform"}
    model = ub.models.get(name, **kwargs)
    assert len(model.losses) == regularised  # Conv kernels and the head's kernel(s) only.
    twin = ub.models.get(name, **kwargs)
    for a, b in zip(model.variables, twin.variables):
        np.testing.assert_array_equal(to_np(a), to_np(b))
    other = ub.models.get(name, **{**kwargs, "seed": 5})
    assert not np.array_equal(to_np(model.layers[-1].trainable_variables[0]),
                              to_np(other.layers[-1].trainable_variables[0]))
