"""Pieces the convolutional models share: seeded initialisers and the reference BatchNorm."""
from collections.abc import Callable

import keras
import numpy as np

# Torch defaults, as in the reference Wide ResNet and ResNet-50 (Keras momentum 0.9 means
# moving = 0.9 * moving + 0.1 * batch).
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9


def initializer_stream(seed: int) -> Callable[..., keras.initializers.Initializer]:
    """Returns a factory of initialisers (He-normal by default), each seeded from `seed`.

    Keras 3 initialisers with an integer seed repeat the same values on every call, so
    each layer needs a distinct seed; drawing them from one generator makes the whole
    network a deterministic function of `seed`. `make(cls, **kwargs)` builds
    `cls(seed=<next seed>, **kwargs)`.
    """
    rng = np.random.default_rng(seed)

    def make(cls: type = keras.initializers.HeNormal, **kwargs) -> keras.initializers.Initializer:
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
