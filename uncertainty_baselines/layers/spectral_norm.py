"""Spectral normalisation of Dense and Conv2D layers (Miyato et al. 2018, "Spectral
normalization for generative adversarial networks"), with the soft bound SNGP uses (Liu et
al. 2020, "Simple and principled uncertainty estimation with deterministic deep learning via
distance awareness").

A layer's linear map A (the kernel matrix of a Dense layer; the convolution operator of a
Conv2D layer, on inputs of the layer's input shape) is used as A / max(1, sigma / c), where
c is ``norm_multiplier`` and sigma the largest singular value of A, so the map's spectral
norm is at most c (A is left unchanged when its norm is already below c). This bounds the
layer's Lipschitz constant, which keeps distances between inputs from collapsing in the
hidden representation (SNGP's "distance awareness").

sigma is estimated by power iteration: unit vectors v (input side) and u (output side) are
non-trainable weights; each training call runs ``power_iterations`` steps v <- A^T u / |A^T u|,
u <- A v / |A v| from the stored vectors and stores the new ones, other calls reuse them.
sigma = |A v| with v held constant, so the gradient flows through sigma as in Miyato et al.
|A v| never exceeds the true sigma, so the bound holds up to the power iteration's
convergence (one step per training call tracks the slowly changing kernel).

The raw kernel stays the trainable variable and its regulariser sees the raw kernel. (The
reference SNGP implementation instead overwrites the kernel variable with its normalised
value on every call.)
"""
from __future__ import annotations

import keras
from keras import ops


def _l2_normalize(x):
    return x / (ops.sqrt(ops.sum(ops.square(x))) + 1e-12)


class _SpectralNormalization:
    """Power iteration and the bounded kernel shared by the layers below. A subclass stores
    ``norm_multiplier``, ``power_iterations`` and ``seed``, defines the map A (``_apply``)
    and its adjoint (``_apply_adjoint``) for a given kernel, and calls ``_build_vectors``."""

    def _check_arguments(self, norm_multiplier: float, power_iterations: int) -> None:
        if not norm_multiplier > 0:
            raise ValueError(f"norm_multiplier must be > 0, got {norm_multiplier}.")
        if not isinstance(power_iterations, int) or power_iterations < 1:
            raise ValueError(f"power_iterations must be an int >= 1, got {power_iterations}.")

    def _build_vectors(self, v_shape: tuple[int, ...], u_shape: tuple[int, ...]) -> None:
        """v [1, input...] and u [1, output...], random with norm ~1. One replica's values
        are kept under tf.distribute: every replica computes the same ones."""
        for name, shape, seed in (("v", v_shape, self.seed), ("u", u_shape, self.seed + 1)):
            size = 1
            for n in shape:
                size *= n
            init = keras.initializers.RandomNormal(stddev=size ** -0.5, seed=seed)
            setattr(self, name, self.add_weight(shape=shape, name=name, initializer=init,
                                                trainable=False,
                                                aggregation="only_first_replica"))

    def _apply(self, x, kernel):
        raise NotImplementedError

    def _apply_adjoint(self, y, kernel):
        raise NotImplementedError

    def normalized_kernel(self, training: bool | None = None):
        """The kernel scaled by 1 / max(1, sigma / norm_multiplier); with ``training`` the
        power iteration advances first (and u, v are updated)."""
        kernel = self.kernel
        v = self.v.value
        if training:
            u = self.u.value
            for _ in range(self.power_iterations):
                v = _l2_normalize(self._apply_adjoint(u, kernel))
                u = _l2_normalize(self._apply(v, kernel))
            v = ops.stop_gradient(v)
            self.u.assign(ops.stop_gradient(u))
            self.v.assign(v)
        sigma = ops.sqrt(ops.sum(ops.square(self._apply(v, kernel))))
        return kernel / ops.maximum(1.0, sigma / self.norm_multiplier)

    # Keras' Dense and Conv2D save only kernel and bias: save and load every weight instead.
    def save_own_variables(self, store):
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)

    def _spectral_config(self) -> dict:
        return {"norm_multiplier": self.norm_multiplier,
                "power_iterations": self.power_iterations, "seed": self.seed}


@keras.saving.register_keras_serializable(package="ub")
class SpectralNormDense(_SpectralNormalization, keras.layers.Dense):
    """``keras.layers.Dense`` whose kernel W [D, units] has spectral norm at most
    ``norm_multiplier`` (see the module docstring): x -> activation(x W_n + b).

    Takes Dense's arguments; ``norm_multiplier`` 1 is plain spectral normalisation, the SNGP
    reference Wide ResNet uses 6; ``seed`` seeds the initial u, v.
    """

    def __init__(self, units: int, *, norm_multiplier: float = 1.0, power_iterations: int = 1,
                 seed: int = 0, **kwargs):
        super().__init__(units, **kwargs)
        self._check_arguments(norm_multiplier, power_iterations)
        self.norm_multiplier = float(norm_multiplier)
        self.power_iterations, self.seed = power_iterations, seed

    def build(self, input_shape):
        super().build(input_shape)
        self._build_vectors((1, input_shape[-1]), (1, self.units))

    def _apply(self, x, kernel):
        return ops.matmul(x, kernel)

    def _apply_adjoint(self, y, kernel):
        return ops.matmul(y, ops.transpose(kernel))

    def call(self, inputs, training=None):
        x = ops.matmul(inputs, self.normalized_kernel(training))
        if self.bias is not None:
            x = x + self.bias
        return self.activation(x) if self.activation is not None else x

    def get_config(self):
        return {**super().get_config(), **self._spectral_config()}


@keras.saving.register_keras_serializable(package="ub")
class SpectralNormConv2D(_SpectralNormalization, keras.layers.Conv2D):
    """``keras.layers.Conv2D`` (channels last, groups 1) whose convolution operator, on
    inputs of the layer's input shape, has spectral norm at most ``norm_multiplier``.

    The operator's norm is that of the linear map image -> feature map, not of the kernel
    reshaped to a matrix (which can be several times smaller or larger); power iteration
    runs through the convolution and its transpose (Gouk et al. 2018, as SNGP's
    ``SpectralNormalizationConv2D``), so the height and width must be known when the layer
    is built. Takes Conv2D's arguments; ``norm_multiplier`` 1 is plain spectral
    normalisation, the SNGP reference Wide ResNet uses 6; ``seed`` seeds
    the initial u, v.
    """

    def __init__(self, filters: int, kernel_size: int | tuple[int, int], *,
                 norm_multiplier: float = 1.0, power_iterations: int = 1, seed: int = 0,
                 **kwargs):
        super().__init__(filters, kernel_size, **kwargs)
        self._check_arguments(norm_multiplier, power_iterations)
        if self.data_format != "channels_last" or self.groups != 1:
            raise ValueError(f"SpectralNormConv2D supports channels_last and groups=1, got "
                             f"data_format={self.data_format!r}, groups={self.groups}.")
        self.norm_multiplier = float(norm_multiplier)
        self.power_iterations, self.seed = power_iterations, seed

    def build(self, input_shape):
        if len(input_shape) != 4 or None in tuple(input_shape[1:]):
            raise ValueError(f"SpectralNormConv2D needs inputs [batch, height, width, channels] "
                             f"with known height, width and channels (the operator norm "
                             f"depends on them), got shape {input_shape}.")
        super().build(input_shape)
        in_shape = (1, *input_shape[1:])
        out_shape = tuple(self.compute_output_shape(in_shape))
        # Output padding that makes the transposed convolution return the input's size.
        self._output_padding = tuple(
            n - ((m - 1) * s + k_eff - 2 * (k_eff // 2 if self.padding == "same" else 0))
            for n, m, s, k_eff in zip(in_shape[1:3], out_shape[1:3], self.strides,
                                      ((k - 1) * d + 1 for k, d in
                                       zip(self.kernel_size, self.dilation_rate))))
        self._build_vectors(in_shape, out_shape)

    def _apply(self, x, kernel):
        return self.convolution_op(x, kernel)

    def _apply_adjoint(self, y, kernel):
        return ops.conv_transpose(y, kernel, strides=self.strides, padding=self.padding,
                                  output_padding=self._output_padding,
                                  dilation_rate=self.dilation_rate, data_format="channels_last")

    def call(self, inputs, training=None):
        x = self.convolution_op(inputs, self.normalized_kernel(training))
        if self.use_bias:
            x = x + self.bias
        return self.activation(x) if self.activation is not None else x

    def get_config(self):
        return {**super().get_config(), **self._spectral_config()}
