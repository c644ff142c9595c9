"""Importing checkpoints of the reference suite (tf.keras 2) into our Keras 3 models.

A real reference Wide ResNet checkpoint (../shared/data/ub-checkpoints) must reproduce the
reference's logits; synthetic checkpoints with reference-style keys
(`model/layer_with_weights-N/<attribute>/.ATTRIBUTES/VARIABLE_VALUE`) check each refusal,
that a refusal assigns nothing, and the ResNet-50 layer order.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

import uncertainty_baselines as ub
from uncertainty_baselines.models.reference_checkpoint import import_reference_checkpoint, weighted_layers

BN = ("gamma", "beta", "moving_mean", "moving_variance")


def write_reference_checkpoint(prefix, layers, nested=None) -> str:
    """Saves `layers` ([{attribute: array}] in layer_with_weights order) the way the reference
    does (model and optimizer objects, save counter); `nested` adds a nested model at index 0."""
    model = tf.Module()
    for n, attributes in enumerate(layers):
        layer = tf.Module()
        for name, value in attributes.items():
            setattr(layer, name, tf.Variable(np.asarray(value, np.float32)))
        setattr(model, f"layer_with_weights-{n}", layer)
    if nested is not None:
        setattr(getattr(model, "layer_with_weights-0"), "layer_with_weights-0", nested)
    optimizer = tf.Module()
    optimizer.iterations = tf.Variable(30, dtype=tf.int64)
    return tf.train.Checkpoint(model=model, optimizer=optimizer).save(str(prefix))


def values(model) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(v).copy() for v in model.weights]


def random_like(layers, seed: int) -> list[dict]:
    """New values for the weighted `layers` (variance positive), keyed by attribute name."""
    rng = np.random.default_rng(seed)
    return [{v.path.split("/")[-1]: rng.uniform(0.5, 1.5, tuple(v.shape)) for v in layer.weights}
            for layer in layers]


@pytest.fixture
def small_model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, use_bias=False)(inputs)
    x = keras.layers.Activation("relu")(keras.layers.BatchNormalization()(x))
    logits = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, logits, name="small")


@pytest.mark.integration
def test_the_real_reference_wide_resnet_gives_the_reference_logits(shared_data):
    folder = shared_data / "ub-checkpoints" / "wrn16-2"
    if not (folder / "checkpoint").exists():
        pytest.skip(f"reference checkpoint {folder} is absent")
    expected = np.load(folder / "expected.npz")
    for path in (folder, folder / "checkpoint-1"):  # a folder or a prefix
        model = ub.models.get("wide_resnet", input_shape=(32, 32, 3), depth=16,
                              width_multiplier=2, num_classes=10)
        assert ub.models.import_reference_checkpoint(path, model) is model
        logits = keras.ops.convert_to_numpy(model(expected["features"], training=False))
        np.testing.assert_allclose(logits, expected["logits"], rtol=0, atol=1e-4)
    assert model.count_params() == 693_498


def test_a_synthetic_checkpoint_is_assigned_by_layer_and_attribute(small_model, tmp_path):
    stored = random_like(weighted_layers(small_model), seed=1)
    write_reference_checkpoint(tmp_path / "ckpt", stored)
    import_reference_checkpoint(tmp_path, small_model)  # the folder: its latest checkpoint
    for layer, attributes in zip(weighted_layers(small_model), stored):
        for v in layer.weights:
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(v),
                                          attributes[v.path.split("/")[-1]].astype(np.float32))


def refused(model, prefix, match: str):
    """Asserts the import into `model` is refused with `match` and changes no weight."""
    before = values(model)
    with pytest.raises(ValueError, match=match):
        import_reference_checkpoint(prefix, model)
    for a, b in zip(before, values(model)):
        np.testing.assert_array_equal(a, b)


def test_a_wrong_layer_count_is_refused(small_model, tmp_path):
    stored = random_like(weighted_layers(small_model), seed=1)
    prefix = write_reference_checkpoint(tmp_path / "ckpt", stored + [{"kernel": np.ones((2, 2))}])
    refused(small_model, prefix, r"has 4 layers with weights, the model 'small' has 3")


def test_a_wrong_shape_is_refused_naming_the_key_and_our_variable(small_model, tmp_path):
    stored = random_like(weighted_layers(small_model), seed=1)
    stored[2]["kernel"] = np.ones((5, 2))  # the last layer: earlier ones would fit
    dense = weighted_layers(small_model)[2]
    prefix = write_reference_checkpoint(tmp_path / "ckpt", stored)
    refused(small_model, prefix, rf"model/layer_with_weights-2/kernel/\.ATTRIBUTES/VARIABLE_VALUE "
                                 rf"has shape \(5, 2\) \(float32\), model variable {dense.name}/kernel "
                                 rf"has \(4, 2\)")


@pytest.mark.parametrize("change", ["missing", "extra"])
def test_a_missing_or_extra_attribute_is_refused(small_model, tmp_path, change):
    stored = random_like(weighted_layers(small_model), seed=1)
    if change == "missing":
        del stored[2]["bias"]
        match = r"model/layer_with_weights-2 has attributes \['kernel'\], the model's Dense layer"
    else:
        stored[2]["scale"] = np.ones(2)
        match = r"model/layer_with_weights-2 has attributes \['bias', 'kernel', 'scale'\]"
    refused(small_model, write_reference_checkpoint(tmp_path / "ckpt", stored), match)


def test_a_nested_model_is_refused(small_model, tmp_path):
    stored = random_like(weighted_layers(small_model), seed=1)
    inner = tf.Module()
    inner.kernel = tf.Variable(np.ones((3, 3), np.float32))
    prefix = write_reference_checkpoint(tmp_path / "ckpt", stored, nested=inner)
    refused(small_model, prefix, r"unsupported checkpoint key model/layer_with_weights-0/"
                                 r"layer_with_weights-0/kernel/.*no nested models")


def test_a_folder_without_a_checkpoint_is_refused(small_model, tmp_path):
    with pytest.raises(FileNotFoundError, match="no 'checkpoint' file"):
        import_reference_checkpoint(tmp_path, small_model)


def reference_resnet50_shapes(num_classes: int) -> list[dict[str, tuple]]:
    """Attribute shapes of the reference's resnet50_deterministic, in its layer_with_weights
    order: stem 7x7 conv and BN, bottlenecks [3, 4, 6, 3] (1x1, 3x3 stride, 1x1 x4), fc.
    Its blocks add [main, shortcut], so a projection block lists the main path's last conv,
    the shortcut conv, then their BNs in the same order (tf.keras 2 orders by depth, then by
    the order the walk from the output meets a layer)."""
    def conv(size, c_in, c_out):
        return {"kernel": (size, size, c_in, c_out)}

    def bn(channels):
        return {name: (channels,) for name in BN}

    shapes, c_in = [conv(7, 3, 64), bn(64)], 64
    for filters, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for block in range(blocks):
            out = 4 * filters
            shapes += [conv(1, c_in, filters), bn(filters), conv(3, filters, filters), bn(filters)]
            if block == 0:
                shapes += [conv(1, filters, out), conv(1, c_in, out), bn(out), bn(out)]
            else:
                shapes += [conv(1, filters, out), bn(out)]
            c_in = out
    return shapes + [{"kernel": (2048, num_classes), "bias": (num_classes,)}]


@pytest.fixture(scope="module")
def resnet50_small():
    return ub.models.get("resnet50", input_shape=(32, 32, 3), num_classes=10)


@pytest.fixture(scope="module")
def reference_resnet50_checkpoint(tmp_path_factory):
    rng = np.random.default_rng(0)

    def value(name, shape):  # kernels scaled by fan-in so the logits stay finite
        if name == "kernel":
            return (rng.standard_normal(shape) / np.sqrt(np.prod(shape[:-1]))).astype(np.float32)
        return rng.uniform(0.5, 1.5, shape).astype(np.float32)

    stored = [{name: value(name, shape) for name, shape in layer.items()}
              for layer in reference_resnet50_shapes(num_classes=10)]
    return write_reference_checkpoint(tmp_path_factory.mktemp("resnet50") / "ckpt", stored), stored


def test_our_resnet50_lists_its_weights_in_the_reference_order(resnet50_small):
    assert [{v.path.split("/")[-1]: tuple(v.shape) for v in layer.weights}
            for layer in weighted_layers(resnet50_small)] == reference_resnet50_shapes(num_classes=10)


def test_a_reference_resnet50_checkpoint_imports_each_weight_to_its_place(
        resnet50_small, reference_resnet50_checkpoint):
    prefix, stored = reference_resnet50_checkpoint
    import_reference_checkpoint(prefix, resnet50_small)
    # Found from the graph, not from the layer order: the first block's Add takes [main, shortcut]
    # as the reference's; in the first stage both 1x1 convs map 64 -> 256, so shapes cannot tell.
    producer = {id(layer.output): layer for layer in resnet50_small.layers}
    add = next(layer for layer in resnet50_small.layers if isinstance(layer, keras.layers.Add))
    main_bn, shortcut_bn = (producer[id(t)] for t in add.input)
    assert isinstance(producer[id(producer[id(shortcut_bn.input)].input)], keras.layers.MaxPooling2D)
    placed = {6: producer[id(main_bn.input)].kernel, 7: producer[id(shortcut_bn.input)].kernel,
              8: main_bn.gamma, 9: shortcut_bn.gamma, 106: resnet50_small.layers[-1].kernel}
    for n, variable in placed.items():
        name = variable.path.split("/")[-1]
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), stored[n][name])
    logits = keras.ops.convert_to_numpy(resnet50_small(np.zeros((1, 32, 32, 3)), training=False))
    assert logits.shape == (1, 10) and np.isfinite(logits).all()
