"""BatchEnsemble layers (Wen, Tran & Ba 2020, "BatchEnsemble: an alternative approach to
efficient ensemble and lifelong learning").

M members share one kernel W; member m owns rank-1 "fast weights" r_m (input side, also
called alpha) and s_m (output side, gamma) and a bias b_m, so its effective kernel is
diag(r_m) W diag(s_m) at the cost of two elementwise multiplies instead of M kernels.

Inputs are member-major tiled: the caller repeats a batch of B examples M times along the
batch axis, so a batch of N = M * B rows where rows [m*B, (m+1)*B) belong to member m
(``ops.tile(x, (M, 1, ...))``). N must be divisible by ``ensemble_size``; the layers raise
a ValueError when the batch size is static and it is not (a dynamic batch that is not
divisible fails in the reshape instead).
"""
from __future__ import annotations

from typing import Callable

import keras
import numpy as np
from keras import ops

from uncertainty_baselines.layers.common import (Conv2DKernelMap, DenseKernelMap, InitializerLike,
                                                 RegularizerLike, check_initializer,
                                                 check_member_batch, check_units,
                                                 conv2d_arguments, derived_seed, next_draw,
                                                 resolve_initializer, serialize_initializer,
                                                 walk)

# The reference BatchEnsemble scripts' --random_sign_init: fast weights drawn from N(1, 0.5^2).
REFERENCE_RANDOM_SIGN_INIT = -0.5


@keras.saving.register_keras_serializable(package="ub")
class RandomSign(keras.initializers.Initializer):
    """Random-sign initialiser for ensemble factors: each value is sign * (1 + spread * u),
    sign = +1 with probability `positive_probability` (a positive random_sign_init of the
    reference) and -1 otherwise, u ~ Uniform(-1, 1).

    Random signs decorrelate the members from the first step. The default spread 0 is
    edward2's ``RandomSign`` (exactly +1 or -1); a spread in (0, 1) jitters the magnitudes
    within [1 - spread, 1 + spread] (0.5 was this suite's BatchEnsemble default before
    commit 1e840c6). As with Keras' own
    random initialisers, an instance repeats its values on every call (``seed=None`` picks
    a random seed once); a ``keras.random.SeedGenerator`` seed gives new values per call.
    """

    def __init__(self, spread: float = 0.0, seed: int | keras.random.SeedGenerator | None = None,
                 positive_probability: float = 0.5):
        if not 0.0 <= spread < 1.0:
            raise ValueError(f"spread must be in [0, 1), got {spread}.")
        if not 0.0 < positive_probability <= 1.0:
            raise ValueError(f"positive_probability must be in (0, 1], got {positive_probability}.")
        self.spread, self.positive_probability = float(spread), float(positive_probability)
        self._init_seed = seed
        self.seed = int(np.random.default_rng().integers(2**31 - 1)) if seed is None else seed

    def __call__(self, shape, dtype=None):
        # One draw for both factors (two draws with one integer seed would be identical).
        u = keras.random.uniform((2, *shape), minval=-1.0, maxval=1.0, seed=self.seed,
                                 dtype=dtype)
        # P(u < 1 - 2p) = 1 - p for u ~ Uniform(-1, 1).
        sign = ops.cast(ops.where(u[0] < 1.0 - 2.0 * self.positive_probability, -1.0, 1.0), u.dtype)
        return sign * (1.0 + self.spread * u[1])

    def get_config(self):
        return {"spread": self.spread, "positive_probability": self.positive_probability,
                "seed": keras.saving.serialize_keras_object(self._init_seed)}


def random_sign_init_error(random_sign_init: float) -> str:
    """Why `random_sign_init` is not a valid value of the reference's flag ('' if it is)."""
    if random_sign_init < 0 or 0 < random_sign_init <= 1:
        return ""
    return ("random_sign_init must be non-zero and at most 1 (> 0: the probability of +1; "
            f"< 0: minus the stddev of a normal around 1), got {random_sign_init}")


def sign_initializer(random_sign_init: float,
                     seed: int | None = None) -> keras.initializers.Initializer:
    """The reference's factor initialiser for its flag `random_sign_init` (edward2's
    ``make_sign_initializer``): > 0, +1 with that probability, else -1 (``RandomSign``);
    < 0, N(1, random_sign_init^2), e.g. the reference BatchEnsemble's -0.5 (2% negative)."""
    if error := random_sign_init_error(random_sign_init):
        raise ValueError(error)
    if random_sign_init > 0:
        return RandomSign(seed=seed, positive_probability=random_sign_init)
    return keras.initializers.RandomNormal(mean=1.0, stddev=-random_sign_init, seed=seed)


class _BatchEnsembleBase(keras.layers.Layer):
    """Shared arguments, weights and checks of the BatchEnsemble layers; a subclass mixes
    in the shared kernel's map (``DenseKernelMap`` or ``Conv2DKernelMap``)."""

    kernel_shape: Callable
    add_kernel: Callable
    linear: Callable

    def __init__(self, ensemble_size: int, activation=None, use_bias: bool = True,
                 kernel_initializer: InitializerLike = None,
                 fast_weight_initializer: InitializerLike = None,
                 kernel_regularizer: RegularizerLike = None,
                 bias_regularizer: RegularizerLike = None,
                 fast_weight_regularizer: RegularizerLike = None, seed: int = 0,
                 random_sign_init: float = REFERENCE_RANDOM_SIGN_INIT, **kwargs):
        super().__init__(**kwargs)
        if ensemble_size < 1:
            raise ValueError(f"ensemble_size must be >= 1, got {ensemble_size}.")
        if error := random_sign_init_error(random_sign_init):
            raise ValueError(error)
        self.ensemble_size, self.use_bias, self.seed = ensemble_size, use_bias, seed
        self.random_sign_init = float(random_sign_init)  # of the default fast-weight init.
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = check_initializer(kernel_initializer)
        self.fast_weight_initializer = check_initializer(fast_weight_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.fast_weight_regularizer = keras.regularizers.get(fast_weight_regularizer)

    def build(self, input_shape):
        """The shared kernel; alpha [M, in], gamma [M, out] and bias [M, out] (or None)."""
        kernel_shape = self.kernel_shape(input_shape)
        check_member_batch(self, input_shape[0])
        self.kernel = self.add_kernel(kernel_shape)
        alpha_init = resolve_initializer(self.fast_weight_initializer,
                                         lambda s: sign_initializer(self.random_sign_init, s),
                                         derived_seed(self.seed, 1))
        m, (in_features, out_features) = self.ensemble_size, kernel_shape[-2:]
        self.alpha = self.add_weight(shape=(m, in_features), name="alpha",
                                     initializer=alpha_init,
                                     regularizer=self.fast_weight_regularizer)
        self.gamma = self.add_weight(shape=(m, out_features), name="gamma",
                                     initializer=next_draw(alpha_init),
                                     regularizer=self.fast_weight_regularizer)
        self.bias = self.add_weight(shape=(m, out_features), name="bias", initializer="zeros",
                                    regularizer=self.bias_regularizer) if self.use_bias else None

    def call(self, inputs):
        check_member_batch(self, inputs.shape[0])
        m = self.ensemble_size
        # [M*B, ..., D] -> [M, B, ..., D]: member m's fast weights broadcast over its rows.
        per_member = (m, 1) + (1,) * (len(inputs.shape) - 2) + (-1,)
        x = ops.reshape(inputs, (m, -1, *ops.shape(inputs)[1:]))
        x = ops.reshape(x * ops.reshape(self.alpha, per_member), (-1, *ops.shape(inputs)[1:]))
        y = self.linear(x, self.kernel)
        y = ops.reshape(y, (m, -1, *ops.shape(y)[1:])) * ops.reshape(self.gamma, per_member)
        if self.use_bias:
            y = y + ops.reshape(self.bias, per_member)
        return self.activation(ops.reshape(y, (-1, *ops.shape(y)[2:])))

    def get_config(self):
        return {**super().get_config(), "ensemble_size": self.ensemble_size,
                "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": serialize_initializer(self.kernel_initializer),
                "fast_weight_initializer": serialize_initializer(self.fast_weight_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
                "fast_weight_regularizer":
                    keras.regularizers.serialize(self.fast_weight_regularizer),
                "seed": self.seed, "random_sign_init": self.random_sign_init}


@keras.saving.register_keras_serializable(package="ub")
class DenseBatchEnsemble(DenseKernelMap, _BatchEnsembleBase):
    """Dense layer of a BatchEnsemble: member m maps its rows x to
    activation(((x * r_m) @ W) * s_m + b_m), with one shared kernel W [D, units].

    Inputs [M*B, ..., D] (member-major tiled, see the module docstring) -> [M*B, ...,
    units]. Initialisers given by name or left None (Glorot-uniform kernel, fast weights
    from ``sign_initializer(random_sign_init)``) are seeded from ``seed``;
    initialiser objects are used as given (the output fast weights take an independent draw
    of the same initialiser). Regularisers are
    Keras loss terms on the kernel, the member biases and both fast weights.
    """

    def __init__(self, units: int, ensemble_size: int, activation=None, use_bias: bool = True,
                 kernel_initializer: InitializerLike = None,
                 fast_weight_initializer: InitializerLike = None,
                 kernel_regularizer: RegularizerLike = None,
                 bias_regularizer: RegularizerLike = None,
                 fast_weight_regularizer: RegularizerLike = None, seed: int = 0, **kwargs):
        super().__init__(ensemble_size, activation, use_bias, kernel_initializer,
                         fast_weight_initializer, kernel_regularizer, bias_regularizer,
                         fast_weight_regularizer, seed, **kwargs)
        self.units = check_units(units)


@keras.saving.register_keras_serializable(package="ub")
class Conv2DBatchEnsemble(Conv2DKernelMap, _BatchEnsembleBase):
    """2-D convolution of a BatchEnsemble, channels last: member m maps its rows x to
    activation(conv(x * r_m, W) * s_m + b_m), r_m over input channels, s_m and b_m over
    filters, one shared kernel W [kh, kw, C_in, filters].

    Inputs [M*B, H, W, C_in] (member-major tiled, see the module docstring). Initialisers
    given by name or left None (He-normal kernel, as the repo's convolutional models use;
    fast weights from ``sign_initializer(random_sign_init)``) are seeded from ``seed``;
    initialiser objects are used as given.
    """

    def __init__(self, filters: int, kernel_size: int | tuple[int, int], ensemble_size: int,
                 strides: int | tuple[int, int] = 1, padding: str = "same", activation=None,
                 use_bias: bool = True, kernel_initializer: InitializerLike = None,
                 fast_weight_initializer: InitializerLike = None,
                 kernel_regularizer: RegularizerLike = None,
                 bias_regularizer: RegularizerLike = None,
                 fast_weight_regularizer: RegularizerLike = None, seed: int = 0, **kwargs):
        super().__init__(ensemble_size, activation, use_bias, kernel_initializer,
                         fast_weight_initializer, kernel_regularizer, bias_regularizer,
                         fast_weight_regularizer, seed, **kwargs)
        self.filters, self.kernel_size, self.strides, self.padding = conv2d_arguments(
            filters, kernel_size, strides, padding)


def fast_weights(model: keras.Model) -> list:
    """The rank-1 fast weights (alpha, gamma) of every BatchEnsemble layer in `model`,
    nested models included (e.g. to give them their own learning rate)."""
    return [w for layer in walk(model) if isinstance(layer, _BatchEnsembleBase)
            for w in (layer.alpha, layer.gamma)]
