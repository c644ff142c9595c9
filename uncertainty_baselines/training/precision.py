"""--mixed_precision: Keras mixed-precision policies for the image baselines (TF backend).

bfloat16 compute with float32 variables on CPUs and TPUs (`mixed_bfloat16`: the same
exponent range as float32, no loss scaling), float16 with dynamic loss scaling on GPUs
(`mixed_float16`, `keras.optimizers.LossScaleOptimizer`; the train step scales the loss with
`optimizer.scale_loss`, a no-op for other optimizers, and `apply` unscales the gradients and
skips non-finite steps). The model's logits are cast to float32 (`float32_outputs`) so the
loss, softmax and metrics are computed in float32.
"""
from __future__ import annotations

import keras
import tensorflow as tf

FLOAT32 = "float32"


def policy_name(mixed_precision: bool) -> str:
    """The Keras policy: float32; with mixed precision mixed_float16 on GPUs, else mixed_bfloat16."""
    if not mixed_precision:
        return FLOAT32
    return "mixed_float16" if tf.config.list_logical_devices("GPU") else "mixed_bfloat16"


def set_policy(mixed_precision: bool) -> str:
    """Set Keras' global dtype policy (before any model is built); returns its name."""
    name = policy_name(mixed_precision)
    keras.mixed_precision.set_global_policy(name)
    return name


def float32_outputs(model: keras.Model) -> keras.Model:
    """`model` with its outputs cast to float32 (the same layers and variables); unchanged
    when they already are float32."""
    if all(keras.backend.standardize_dtype(t.dtype) == FLOAT32 for t in model.outputs):
        return model
    cast = keras.layers.Activation("linear", dtype=FLOAT32, name="float32_logits")
    return keras.Model(model.inputs, cast(model.outputs[0]), name=model.name)


def loss_scaled(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """`optimizer` wrapped in dynamic loss scaling under mixed_float16; else unchanged."""
    if keras.mixed_precision.global_policy().name == "mixed_float16":
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
