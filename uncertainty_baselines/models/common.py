"""Pieces the convolutional models share: seeded initialisers, the reference BatchNorm, and
the layer factories a method model swaps (conv, output head) with their defaults."""
from collections.abc import Callable
from typing import Protocol

import keras
import numpy as np

# Torch defaults, as in the reference Wide ResNet and ResNet-50 (Keras momentum 0.9 means
# moving = 0.9 * moving + 0.1 * batch).
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9

# The seeded stream `initializer_stream` returns: each call is the next initialiser.
Init = Callable[..., keras.initializers.Initializer]
# A layer, or any callable, mapping a symbolic tensor to a symbolic tensor.
TensorFn = Callable[[keras.KerasTensor], keras.KerasTensor]


KERNEL_INITIALIZERS = {"he_normal": keras.initializers.HeNormal,
                       "glorot_uniform": keras.initializers.GlorotUniform}


def initializer_stream(seed: int, default: str = "he_normal") -> Init:
    """Returns a factory of initialisers (`default`, a name of KERNEL_INITIALIZERS), each
    seeded from `seed`.

    Keras 3 initialisers with an integer seed repeat the same values on every call, so
    each layer needs a distinct seed; drawing them from one generator makes the whole
    network a deterministic function of `seed`. `make(cls, **kwargs)` builds
    `cls(seed=<next seed>, **kwargs)`.
    """
    if default not in KERNEL_INITIALIZERS:
        raise ValueError(f"unknown initializer {default!r}; valid: {sorted(KERNEL_INITIALIZERS)}")
    rng = np.random.default_rng(seed)

    def make(cls: type = KERNEL_INITIALIZERS[default], **kwargs) -> keras.initializers.Initializer:
        return cls(seed=int(rng.integers(2**31 - 1)), **kwargs)

    return make


def l2_regularizer(coefficient: float) -> keras.regularizers.Regularizer | None:
    """An L2 penalty `coefficient * sum(w**2)` (a loss term), or None when it is zero."""
    if coefficient < 0:
        raise ValueError(f"L2 coefficient must be >= 0, got {coefficient}")
    return keras.regularizers.L2(coefficient) if coefficient > 0 else None


def batch_norm(l2: float, name: str | None = None) -> keras.layers.BatchNormalization:
    """BatchNorm with the reference epsilon and momentum, L2 on gamma and beta."""
    return keras.layers.BatchNormalization(
        epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name,
        gamma_regularizer=l2_regularizer(l2), beta_regularizer=l2_regularizer(l2))


class ConvFactory(Protocol):
    """Builds a 2-D convolution. It draws from `init` once per kernel, always in the same
    order, so the network's initial weights stay a function of its seed."""

    def __call__(self, filters: int, kernel_size: int, strides: int, l2: float, init: Init,
                 padding: str = "same") -> TensorFn: ...


class HeadFactory(Protocol):
    """Builds the output head mapping pooled features [B, D] to logits ([B, ...])."""

    def __call__(self, num_classes: int, kernel_l2: float, bias_l2: float,
                 init: Init) -> TensorFn: ...


def conv2d(filters: int, kernel_size: int, strides: int, l2: float, init: Init,
           padding: str = "same") -> keras.layers.Conv2D:
    """The default ConvFactory: a bias-free Conv2D whose kernel takes the next initialiser."""
    return keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding=padding, use_bias=False,
        kernel_initializer=init(), kernel_regularizer=l2_regularizer(l2))


def dense_head(num_classes: int, kernel_l2: float, bias_l2: float,
               init: Init) -> keras.layers.Dense:
    """The default HeadFactory: a Dense layer producing [B, num_classes] logits."""
    return keras.layers.Dense(
        num_classes, kernel_initializer=init(), kernel_regularizer=l2_regularizer(kernel_l2),
        bias_regularizer=l2_regularizer(bias_l2))
