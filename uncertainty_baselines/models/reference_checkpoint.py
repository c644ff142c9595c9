"""Import a checkpoint written by the reference suite (google/uncertainty-baselines, tf.keras 2).

The reference saves `tf.train.Checkpoint(model=model, optimizer=optimizer).save(prefix)`.
A model variable's key is `model/layer_with_weights-N/<attribute>/.ATTRIBUTES/VARIABLE_VALUE`,
N counting the functional model's layers that own weights in `model.layers` order. tf.keras 2
and Keras 3 order a functional graph alike (by depth, ties in the order the output-to-input
walk first meets a layer), so the same graph gives the same numbering: our `wide_resnet` and
`resnet50` build the reference's graphs, layer for layer. Layer N maps to our N-th
weighted layer, each attribute to our variable of that name. Optimizer state and save_counter are
ignored. Everything is checked before anything is assigned, so a refused import leaves the
model unchanged. Reading the file needs TensorFlow; the model may be on any Keras backend.
"""
from __future__ import annotations

import os
import re

import keras

_KEY = re.compile(r"model/layer_with_weights-(\d+)/([^/]+)/\.ATTRIBUTES/VARIABLE_VALUE")


def weighted_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers of `model` owning weights, in `model.layers` order: the reference's
    numbering when both build the same graph (verified on a real Wide ResNet checkpoint)."""
    return [layer for layer in model.layers if layer.weights]


def _checkpoint_prefix(checkpoint_path: str | os.PathLike) -> str:
    """The checkpoint prefix: the path itself, or for a folder the one its `checkpoint` file names."""
    import tensorflow as tf
    path = os.fspath(checkpoint_path)
    if os.path.isdir(path):
        prefix = tf.train.latest_checkpoint(path)
        if prefix is None:
            raise FileNotFoundError(f"{path} holds no 'checkpoint' file naming a checkpoint")
        return prefix
    return path


def _reference_layers(shapes: dict, dtypes: dict, prefix: str) -> dict[int, dict[str, tuple]]:
    """{N: {attribute: (key, shape, dtype)}} of the checkpoint's model variables."""
    layers: dict[int, dict[str, tuple]] = {}
    for key, shape in shapes.items():
        if not key.startswith("model/") or "/.OPTIMIZER_SLOT/" in key:
            continue  # optimizer state, save_counter, the object graph
        match = _KEY.fullmatch(key)
        if match is None:
            raise ValueError(f"unsupported checkpoint key {key}: only flat "
                             "model/layer_with_weights-N/<attribute>/.ATTRIBUTES/VARIABLE_VALUE "
                             "keys are supported (no nested models)")
        layers.setdefault(int(match[1]), {})[match[2]] = (key, tuple(shape), dtypes[key].name)
    if not layers:
        raise ValueError(f"checkpoint {prefix} holds no model/layer_with_weights-N variables")
    if sorted(layers) != list(range(len(layers))):
        raise ValueError(f"checkpoint {prefix}: layer_with_weights numbers {sorted(layers)} "
                         "are not 0..n-1")
    return layers


def import_reference_checkpoint(checkpoint_path: str | os.PathLike, model: keras.Model) -> keras.Model:
    """Assigns the model weights of a reference checkpoint to the built `model`; returns it.

    `checkpoint_path` is a prefix (`.../checkpoint-1`) or a folder holding a `checkpoint`
    file. ValueError, naming
    the checkpoint key and our variable, when layer counts, attributes, shapes or dtypes differ.
    """
    import tensorflow as tf
    prefix = _checkpoint_prefix(checkpoint_path)
    reader = tf.train.load_checkpoint(prefix)
    stored = _reference_layers(reader.get_variable_to_shape_map(),
                               reader.get_variable_to_dtype_map(), prefix)
    layers = weighted_layers(model)
    if len(stored) != len(layers):
        raise ValueError(f"checkpoint {prefix} has {len(stored)} layers with weights, "
                         f"the model {model.name!r} has {len(layers)}")
    plan = []
    for n, layer in enumerate(layers):
        ours = {v.path.split("/")[-1]: v for v in layer.weights}
        if len(ours) != len(layer.weights):
            raise ValueError(f"the model's layer {layer.name!r} has several variables of one name: "
                             f"{[v.path for v in layer.weights]} (nested layers are not supported)")
        if set(ours) != set(stored[n]):
            raise ValueError(f"model/layer_with_weights-{n} has attributes {sorted(stored[n])}, the "
                             f"model's {type(layer).__name__} layer {layer.name!r} has {sorted(ours)}")
        for attribute, (key, shape, dtype) in sorted(stored[n].items()):
            variable = ours[attribute]
            if shape != tuple(variable.shape) or dtype != variable.dtype:
                raise ValueError(f"{key} has shape {shape} ({dtype}), model variable {variable.path} "
                                 f"has {tuple(variable.shape)} ({variable.dtype})")
            plan.append((variable, key))
    values = [(variable, reader.get_tensor(key)) for variable, key in plan]  # read all, then assign
    for variable, value in values:
        variable.assign(value)
    return model
