"""Layer factories: the defaults rebuild today's models exactly, and a method model is a
thin registry entry over them (a two-head Wide ResNet, see method_models.py)."""
import hashlib
import json

import keras
import numpy as np
import pytest

import uncertainty_baselines as ub
from uncertainty_baselines import models
from uncertainty_baselines.layers import MCDropout
from uncertainty_baselines.models.common import conv2d
from uncertainty_baselines.models.wide_resnet import wide_resnet

# What fixes a layer's initial weights and role, in a form that does not depend on the CPU
# (the float weights might: initialiser kernels can round differently per instruction
# set): class, shape settings, initialiser class and seed, L2 coefficients.
STRUCTURE_KEYS = ("filters", "kernel_size", "strides", "padding", "use_bias", "units",
                  "epsilon", "momentum", "activation", "target_shape")
INITIALIZER_KEYS = ("seed", "mean", "stddev")
# architecture_sha256 of the models as built before the layer factories existed; ResNet-50
# since it builds the reference's graph (stem pooling, [main, shortcut] adds; issue 13).
WRN_10_1_SHA256 = "dfaddbdd60f54f2255a8caee7e017ec3e2294b97b4a68194b3dd6eeb14213fa3"
RESNET50_SHA256 = "69f98cb0f993162c38a073f73fd3e5164db8421837fdb69628acad9c96db75ed"
TWO_HEAD = "test_two_head_wide_resnet"


def describe(layer: keras.layers.Layer) -> str:
    """One line per layer: its class and the settings that determine its initial weights."""
    parts = [type(layer).__name__]
    for key, value in sorted(layer.get_config().items()):
        if key in STRUCTURE_KEYS:
            parts.append(f"{key}={value}")
        elif key.endswith("_initializer"):
            settings = {k: v for k, v in value["config"].items() if k in INITIALIZER_KEYS}
            parts.append(f"{key}={value['class_name']}{json.dumps(settings, sort_keys=True)}")
        elif key.endswith("_regularizer") and value is not None:
            parts.append(f"{key}={value['config']['l2']}")
    return " ".join(parts)


def architecture_sha256(model: keras.Model) -> str:
    """sha256 of the layers in order (see `describe`) and the variable shapes in order."""
    lines = [describe(layer) for layer in model.layers]
    lines += [str(tuple(v.shape)) for v in model.variables]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def weights(model: keras.Model) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(v) for v in model.weights]


def test_default_wide_resnet_is_the_pinned_architecture():
    model = ub.models.get("wide_resnet", input_shape=(32, 32, 3), depth=10, width_multiplier=1,
                          num_classes=10, seed=0, l2=1e-4, l2_overrides={"dense_bias": 0.0})
    assert architecture_sha256(model) == WRN_10_1_SHA256


def test_default_resnet50_is_the_pinned_architecture(resnet50_imagenet):
    assert architecture_sha256(resnet50_imagenet) == RESNET50_SHA256


def test_conv_factory_builds_every_conv_and_branch_runs_once_per_block():
    convs, branches = [], []

    def recording_conv(filters, kernel_size, strides, l2, init, padding="same"):
        convs.append((filters, kernel_size, strides))
        return conv2d(filters, kernel_size, strides, l2, init, padding=padding)

    def dropout_branch(x):
        branches.append(x.shape)
        return MCDropout(0.1, seed=len(branches))(x)

    model = wide_resnet((8, 8, 3), depth=16, width_multiplier=1, num_classes=3, seed=4,
                        conv=recording_conv, branch=dropout_branch)
    assert len(convs) == 1 + 6 * 2 + 2  # stem, two per block, 1x1 shortcuts of groups 2, 3
    expected = [(8, 8, 16)] * 2 + [(4, 4, 32)] * 2 + [(2, 2, 64)] * 2
    assert [tuple(shape[1:]) for shape in branches] == expected
    # The branch sits between the second BN-ReLU and the second conv of each block.
    layers = [type(l).__name__ for l in model.layers]
    assert all(layers[i - 1] == "Activation" and layers[i + 1] == "Conv2D"
               for i, name in enumerate(layers) if name == "MCDropout")
    # Dropout draws no initialiser: every weight equals the plain model's.
    plain = wide_resnet((8, 8, 3), depth=16, width_multiplier=1, num_classes=3, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(weights(model), weights(plain), strict=True))


@pytest.fixture
def two_head_registered(monkeypatch):
    monkeypatch.setattr(models, "MODELS", dict(models.MODELS))
    models.register(TWO_HEAD, "method_models:two_head_wide_resnet")
    return TWO_HEAD


def test_two_head_method_is_a_registry_entry_built_from_json_kwargs(two_head_registered):
    kwargs = json.loads(json.dumps({"input_shape": [8, 8, 3], "depth": 10,
                                    "width_multiplier": 1, "num_classes": 4, "seed": 2}))
    model = ub.models.get(two_head_registered, **kwargs)
    x = np.random.default_rng(0).standard_normal((3, 8, 8, 3)).astype(np.float32)
    logits = keras.ops.convert_to_numpy(model(x, training=False))
    assert logits.shape == (3, 2, 4) and np.isfinite(logits).all()
    assert not np.allclose(logits[:, 0], logits[:, 1])
    # The head draws last from the seeded stream: the trunk is the plain WRN's, exactly.
    plain = wide_resnet((8, 8, 3), depth=10, width_multiplier=1, num_classes=4, seed=2)
    assert all(np.array_equal(a, b) for a, b in zip(weights(model)[:-2], weights(plain)[:-2],
                                                    strict=True))


def test_two_head_method_trains_on_tensorflow(two_head_registered):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the TF step; JAX and torch run in test_model_backends.py")
    import tensorflow as tf

    model = ub.models.get(two_head_registered, input_shape=(8, 8, 3), depth=10,
                          width_multiplier=1, num_classes=4)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 8, 8, 3)).astype(np.float32)
    y = rng.integers(0, 4, (6, 2))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
            y, model(x, training=True), from_logits=True))
    grads = tape.gradient(loss, model.trainable_variables)
    assert np.isfinite(float(loss)) and all(g is not None for g in grads)
    assert float(tf.norm(grads[-2])) > 0  # the two-head kernel learns
