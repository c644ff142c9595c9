"""Wide ResNet: parameter count, reference hyperparameters, per-group L2, seeding."""
import keras
import numpy as np
import pytest

import uncertainty_baselines as ub
from uncertainty_baselines.layers import MCDropout
from uncertainty_baselines.models.wide_resnet import L2_GROUPS, wide_resnet
from uncertainty_baselines.training import flags


def trainable_count(model: keras.Model) -> int:
    return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


def expected_trainable(depth: int, k: int, num_classes: int, channels: int = 3) -> int:
    """WRN-depth-k trainable parameters counted by hand from the architecture."""
    n = (depth - 4) // 6
    count = 9 * channels * 16  # stem conv
    c_in = 16
    for group, c_out in enumerate((16 * k, 32 * k, 64 * k)):
        for block in range(n):
            count += 2 * c_in + 9 * c_in * c_out + 2 * c_out + 9 * c_out * c_out
            if c_in != c_out or (block == 0 and group > 0):
                count += c_in * c_out  # 1x1 projection shortcut
            c_in = c_out
    return count + 2 * c_in + c_in * num_classes + num_classes  # final BN, dense


def tiny(**kwargs) -> keras.Model:
    return wide_resnet(**{"input_shape": (8, 8, 3), "depth": 10, "width_multiplier": 1,
                          "num_classes": 10, **kwargs})


def test_wrn_28_10_has_36_5_million_parameters(wrn_28_10):
    model = wrn_28_10
    # 36,479,194 is the count published for WRN-28-10 on CIFAR-10 (Zagoruyko & Komodakis).
    assert trainable_count(model) == expected_trainable(28, 10, 10) == 36_479_194
    assert round(trainable_count(model) / 1e6, 1) == 36.5


@pytest.mark.parametrize("depth,k,classes", [(10, 1, 10), (16, 4, 100), (22, 2, 3)])
def test_parameter_count_matches_hand_count(depth, k, classes):
    model = wide_resnet((32, 32, 3), depth=depth, width_multiplier=k, num_classes=classes)
    assert trainable_count(model) == expected_trainable(depth, k, classes)
    bn_channels = sum(v.shape[0] for v in model.non_trainable_variables) // 2
    assert model.count_params() == trainable_count(model) + 2 * bn_channels


def test_reference_layer_settings_and_preactivation_head():
    model = wide_resnet((16, 16, 3), depth=16, width_multiplier=2, num_classes=5)
    bns = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    assert all(l.epsilon == 1e-5 and l.momentum == 0.9 for l in bns)
    assert all(not l.use_bias for l in convs)
    # stem + 2 per block (6n + 1 3x3 convs) and one 1x1 projection per group.
    assert sum(l.kernel_size == (3, 3) for l in convs) == 6 * 2 + 1
    assert sum(l.kernel_size == (1, 1) for l in convs) == 3
    assert isinstance(model.layers[1], keras.layers.Conv2D)  # no BN before the stem conv
    head = [type(l).__name__ for l in model.layers[-4:]]
    assert head == ["BatchNormalization", "Activation", "GlobalAveragePooling2D", "Dense"]


def test_kernels_are_he_normal():
    model = wide_resnet((8, 8, 3), depth=10, width_multiplier=4, num_classes=10)
    kernel = next(l.kernel for l in model.layers if isinstance(l, keras.layers.Conv2D)
                  and l.kernel.shape == (3, 3, 64, 64))
    std = float(np.std(keras.ops.convert_to_numpy(kernel)))
    assert std == pytest.approx(np.sqrt(2 / (9 * 64)), rel=0.03)


def test_outputs_are_logits_of_the_right_shape():
    x = np.random.default_rng(0).standard_normal((3, 8, 8, 3)).astype(np.float32)
    logits = keras.ops.convert_to_numpy(tiny(num_classes=4)(x, training=False))
    assert logits.shape == (3, 4) and np.isfinite(logits).all()
    assert (logits < 0).any() and not np.allclose(logits.sum(axis=1), 1.0)


def squared_sum(variables) -> float:
    return sum(float(np.sum(keras.ops.convert_to_numpy(v) ** 2)) for v in variables)


def test_l2_zero_adds_no_loss_terms():
    assert tiny(l2=0.0).losses == []


def test_per_group_l2_penalises_exactly_the_chosen_weights():
    model = tiny(l2=1e-3, l2_overrides={"bn": 0.0, "dense_bias": 0.0, "group_3_conv": 2e-3})
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    group_3 = [l.kernel for l in convs if l.filters == 64]
    others = [l.kernel for l in convs if l.filters != 64] + [model.layers[-1].kernel]
    expected = 1e-3 * squared_sum(others) + 2e-3 * squared_sum(group_3)
    total = sum(float(keras.ops.convert_to_numpy(loss)) for loss in model.losses)
    assert total == pytest.approx(expected, rel=1e-5)
    assert len(model.losses) == len(convs) + 1


@pytest.mark.parametrize("kwargs,message", [
    ({"depth": 12}, "6n\\+4"), ({"depth": 4}, "6n\\+4"), ({"width_multiplier": 0}, "width"),
    ({"num_classes": 0}, "num_classes"), ({"input_shape": (8, 8)}, "height, width"),
    ({"l2": -1.0}, "L2 coefficient"),
    ({"l2_overrides": {"conv": 1e-4}}, "unknown L2 group.*" + "'input_conv'"),
])
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny(**kwargs)


def test_l2_groups_are_the_reference_names():
    assert L2_GROUPS == ("input_conv", "group_1_conv", "group_2_conv", "group_3_conv", "bn",
                         "dense_kernel", "dense_bias")


def weights(model):
    return [keras.ops.convert_to_numpy(v) for v in model.weights]


def test_same_seed_same_weights_whatever_the_global_state():
    first = weights(tiny(seed=7))
    keras.utils.set_random_seed(123)
    tiny(seed=1)
    second = weights(tiny(seed=7))
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    other = weights(tiny(seed=8))
    kernels = [(a, b) for a, b in zip(first, other) if a.ndim == 4]
    assert all(not np.array_equal(a, b) for a, b in kernels)


def test_mc_dropout_wrn_rate_zero_is_the_plain_model_and_passes_differ():
    x = np.random.default_rng(0).normal(size=(4, 16, 16, 3)).astype(np.float32)
    kwargs = dict(input_shape=(16, 16, 3), depth=10, width_multiplier=1, num_classes=5, l2=1e-4, seed=3)
    plain = ub.models.get("wide_resnet", **kwargs)
    off = ub.models.get("wide_resnet_mc_dropout", **kwargs, dropout_rate=0.0)
    for a, b in zip(plain.weights, [w for w in off.weights if "seed_generator" not in w.path]):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(plain(x, training=False)), np.asarray(off(x, training=False)))
    on = ub.models.get("wide_resnet_mc_dropout", **kwargs, dropout_rate=0.3, filterwise=True)
    assert sum(isinstance(l, MCDropout) for l in on.layers) == 3  # One per residual block (1 per group).
    assert not np.array_equal(np.asarray(on(x, training=False)), np.asarray(on(x, training=False)))


def test_batchensemble_wrn_with_unit_fast_weights_is_the_plain_model():
    x = np.random.default_rng(1).normal(size=(3, 16, 16, 3)).astype(np.float32)
    kwargs = dict(input_shape=(16, 16, 3), depth=10, width_multiplier=1, num_classes=5, l2=1e-4, seed=2)
    plain = ub.models.get("wide_resnet", **kwargs)
    one = ub.models.get("wide_resnet_batchensemble", **kwargs, ensemble_size=1)
    for w in one.weights:
        if w.path.endswith(("alpha", "gamma")) and "batch_normalization" not in w.path:
            w.assign(np.ones(w.shape, np.float32))
    np.testing.assert_allclose(np.asarray(one(x, training=False))[:, 0], np.asarray(plain(x, training=False)),
                               rtol=1e-5, atol=1e-5)
    four = ub.models.get("wide_resnet_batchensemble", **kwargs, ensemble_size=4)
    out = np.asarray(four(x, training=False))
    assert out.shape == (3, 4, 5) and not np.allclose(out[:, 0], out[:, 1])  # Members' fast weights differ.
    fast = ub.layers.fast_weights(four)  # Every conv and the head: (alpha, gamma) each.
    assert len(fast) == 2 * sum(isinstance(l, keras.layers.Conv2D) for l in plain.layers) + 2
    assert {w.path.rsplit("/", 1)[-1] for w in fast} == {"alpha", "gamma"}
    values = np.concatenate([np.asarray(w).ravel() for w in fast])  # The reference's N(1, 0.5^2).
    assert len(values) > 1000 and abs(values.mean() - 1) < 0.05 and abs(values.std() - 0.5) < 0.05
    extra = four.count_params() - plain.count_params()
    assert 0 < extra < 0.1 * plain.count_params()  # Rank-1 fast weights cost little.


WRN_10_1 = dict(input_shape=(8, 8, 3), depth=10, width_multiplier=1, num_classes=5, seed=2)


@pytest.mark.parametrize("name, kwargs, factors", [
    ("wide_resnet_batchensemble", WRN_10_1, ("alpha", "gamma")),
    ("wide_resnet_rank1", WRN_10_1, ("alpha_loc", "gamma_loc")),
    ("resnet50_batchensemble", dict(input_shape=(32, 32, 3), num_classes=4, seed=2), ("alpha", "gamma"))])
def test_random_sign_init_is_the_probability_that_a_fast_weight_starts_positive(name, kwargs, factors):
    """random_sign_init 1 flips no sign, 0.5 about half (the rank-1 default), and the other
    weights stay those of the 0.5 build (only the signs' threshold moves)."""
    def is_factor(w):  # Batch norm's scales are also named gamma.
        return w.path.rsplit("/", 1)[-1] in factors and "batch_normalization" not in w.path

    half, unsigned = (ub.models.get(name, **kwargs, random_sign_init=p) for p in (0.5, 1.0))
    for a, b in zip(half.weights, unsigned.weights, strict=True):
        if is_factor(a):
            a, b = np.asarray(a), np.asarray(b)
            assert np.all(b > 0)
            np.testing.assert_array_equal(np.abs(a), b)
        else:
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    signs = np.concatenate([np.sign(np.asarray(w)).ravel() for w in half.weights if is_factor(w)])
    assert len(signs) > 1000 and abs((signs < 0).mean() - 0.5) < 0.05  # s.d. < 0.016.


def test_glorot_initializer_option_keeps_the_seed_stream_and_changes_only_the_distribution():
    kwargs = dict(input_shape=(8, 8, 3), depth=10, width_multiplier=1, num_classes=5, seed=4)
    he = ub.models.get("wide_resnet", **kwargs)
    np.testing.assert_array_equal(np.asarray(he.weights[0]),
                                  np.asarray(ub.models.get("wide_resnet", **kwargs, initializer="he_normal").weights[0]))
    glorot = ub.models.get("wide_resnet", **kwargs, initializer="glorot_uniform")
    kernel = np.asarray(glorot.layers[1].kernel)  # The stem conv, 3x3x3 -> 16.
    limit = np.sqrt(6.0 / (3 * 3 * 3 + 3 * 3 * 16))
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.9 * limit  # Uniform on [-limit, limit].
    with pytest.raises(ValueError, match="unknown initializer 'orthogonal'"):
        ub.models.get("wide_resnet", **kwargs, initializer="orthogonal")


@pytest.mark.parametrize("name, extra", [("wide_resnet", {}), ("wide_resnet_mc_dropout", {}),
                                         ("wide_resnet_mimo", {"ensemble_size": 2}),
                                         ("wide_resnet_batchensemble", {"ensemble_size": 2}),
                                         ("wide_resnet_variational", {})])
def test_l2_scope_kernels_penalises_only_the_kernels(name, extra):
    """--l2_scope=kernels (its l2_overrides) leaves batch norm and the head's bias unpenalised,
    in every WRN of the registry (the variational WRN's kernels are its posterior means)."""
    kwargs = {"input_shape": (8, 8, 3), "depth": 10, "width_multiplier": 1, "num_classes": 3,
              "l2": 1e-2, "seed": 0, **extra}
    model = ub.models.get(name, **kwargs)
    kernels_only = ub.models.get(name, **kwargs, l2_overrides=flags.L2_SCOPES["kernels"])
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 3 * extra.get("ensemble_size", 1)
                                                      if name == "wide_resnet_mimo" else 3)).astype("float32")
    model(x), kernels_only(x)
    kernels = [v for v in model.trainable_variables if v.name in ("kernel", "kernel_loc")]
    expected = sum(1e-2 * float(np.sum(np.square(v))) for v in kernels)
    assert float(sum(kernels_only.losses)) == pytest.approx(expected, rel=1e-5)
    assert float(sum(model.losses)) > expected  # BN scales (initially 1) are penalised too.



def shortcut_sources(model: keras.Model) -> list[str]:
    """The class of the layer each 1x1 (shortcut) conv reads from, in the model or the
    member network it wraps."""
    layers = [l for m in [model, *[l for l in model.layers if isinstance(l, keras.Model)]] for l in m.layers]
    return [type(layer.input._keras_history.operation).__name__ for layer in layers
            if getattr(layer, "kernel_size", None) == (1, 1)]


def test_shortcut_input_activated_feeds_the_shortcut_conv_the_first_bn_relu():
    raw, activated = tiny(seed=3, width_multiplier=2), tiny(seed=3, width_multiplier=2, shortcut_input="activated")
    assert shortcut_sources(raw) == ["Conv2D", "Add", "Add"]  # the stem conv, then the blocks' sums
    assert shortcut_sources(activated) == ["Activation"] * 3
    assert all(np.array_equal(a, b) for a, b in zip(weights(raw), weights(activated)))
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype(np.float32)
    assert not np.allclose(raw(x), activated(x))
    with pytest.raises(ValueError, match="shortcut_input must be one of \\['raw', 'activated'\\]"):
        tiny(shortcut_input="relu")


@pytest.mark.parametrize("name, extra", [("wide_resnet_mc_dropout", {}), ("wide_resnet_mimo", {"ensemble_size": 2}),
                                         ("wide_resnet_batchensemble", {"ensemble_size": 2}),
                                         ("wide_resnet_rank1", {"ensemble_size": 2}), ("wide_resnet_variational", {}),
                                         ("wide_resnet_sngp", {"num_inducing": 8}),
                                         ("wide_resnet_heteroscedastic", {"num_mc_samples": 4})])
def test_every_wrn_of_the_registry_takes_the_shortcut_input(name, extra):
    kwargs = {"input_shape": (8, 8, 3), "depth": 10, "width_multiplier": 2, "num_classes": 3, "seed": 0, **extra}
    stem, *blocks = shortcut_sources(ub.models.get(name, **kwargs))
    assert "Conv2D" in stem and blocks == ["Add", "Add"]  # the method's stem conv, the sums
    assert shortcut_sources(ub.models.get(name, **kwargs, shortcut_input="activated")) == ["Activation"] * 3


def test_the_shortcut_flag_reaches_the_model_kwargs_only_when_not_the_reference():
    from types import SimpleNamespace
    data = SimpleNamespace(input_shape=(8, 8, 3), num_classes=3)
    config = SimpleNamespace(depth=10, width=2, l2=0.0, seed=0, initializer="he_normal", l2_scope="all",
                             shortcut_input="raw")
    assert "shortcut_input" not in flags.wide_resnet_kwargs(config, data)  # as runs made before the flag
    config.shortcut_input = "activated"
    kwargs = flags.wide_resnet_kwargs(config, data)
    assert kwargs["shortcut_input"] == "activated"
    assert shortcut_sources(ub.models.get("wide_resnet", **kwargs)) == ["Activation"] * 3
