"""Mean-field Gaussian Dense and Conv2D layers with Flipout (Wen et al. 2018, "Flipout:
efficient pseudo-independent weight perturbations on mini-batches").

Each kernel weight has a posterior N(mu, sigma^2), sigma = softplus(rho). A call draws one
perturbation dW = sigma * eps (eps ~ N(0, 1), fresh each call) and gives example n the
kernel mu + diag(r_n) dW diag(s_n), with random signs r_n (inputs) and s_n (outputs):

    y_n = x_n mu + ((x_n * r_n) dW) * s_n        (conv: conv(x_n * r_n, dW) * s_n)

Flipping the signs of a symmetric perturbation leaves its law unchanged, so each example's
output has exactly the plain reparameterisation's marginal, N(x mu, x^2 sigma^2), while
two examples of one batch get uncorrelated perturbations at the cost of one extra matmul
or convolution, which lowers the gradient variance a shared weight sample would have.
Sampling happens in training and at inference, so repeated calls sample the predictive.

Biases are deterministic, as in the reference variational Wide ResNet. ``kl()`` is the
closed-form KL(q || p) of the kernel to the prior p = N(0, prior_stddev^2), or with
``tied_mean`` to N(mu, prior_stddev^2) (the reference CIFAR script's prior); the training
loss adds ``flipout_kl(model)`` (all Flipout layers' sum) divided by the number of
training examples and annealed.
"""
from __future__ import annotations

from typing import Callable

import keras
from keras import ops

from uncertainty_baselines.layers.common import (Conv2DKernelMap, DenseKernelMap, InitializerLike,
                                                 RegularizerLike, ReplicaSeedGenerator,
                                                 check_initializer, check_units,
                                                 conv2d_arguments, derived_seed,
                                                 serialize_initializer, walk)
from uncertainty_baselines.layers.variational import inverse_softplus


class _FlipoutBase(keras.layers.Layer):
    """Shared arguments, posterior weights, sampling and KL of the Flipout layers; a subclass
    mixes in the kernel's map (``DenseKernelMap`` or ``Conv2DKernelMap``)."""

    kernel_shape: Callable
    add_kernel: Callable
    linear: Callable

    def __init__(self, activation=None, use_bias: bool = True,
                 kernel_initializer: InitializerLike = None,
                 kernel_regularizer: RegularizerLike = None,
                 bias_regularizer: RegularizerLike = None, prior_stddev: float = 0.1,
                 init_stddev: float = 1e-3, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        if prior_stddev <= 0 or init_stddev <= 0:
            raise ValueError(f"prior_stddev and init_stddev must be > 0, got {prior_stddev}, "
                             f"{init_stddev}.")
        self.use_bias, self.prior_stddev, self.init_stddev = use_bias, prior_stddev, init_stddev
        self.seed = seed
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = check_initializer(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        # A stream apart from the kernel initialiser's, which draws from `seed` itself.
        self.seed_generator = ReplicaSeedGenerator(derived_seed(seed, 1))

    def build(self, input_shape):
        """kernel_loc and kernel_rho (the posterior's mu and rho) and the bias (or None)."""
        kernel_shape = self.kernel_shape(input_shape)
        self.kernel_loc = self.add_kernel(kernel_shape, name="kernel_loc")
        self.kernel_rho = self.add_weight(
            shape=kernel_shape, name="kernel_rho",
            initializer=keras.initializers.Constant(inverse_softplus(self.init_stddev)))
        self.bias = self.add_weight(shape=kernel_shape[-1:], name="bias", initializer="zeros",
                                    regularizer=self.bias_regularizer) if self.use_bias else None

    def _signs(self, shape):
        """Rademacher (+1 or -1 with probability 1/2) values of `shape`."""
        bits = keras.random.randint(shape, 0, 2, seed=self.seed_generator)
        return ops.cast(2 * bits - 1, self.compute_dtype)

    def call(self, inputs):
        # Per example n: signs over the input features (r_n) and over the outputs (s_n),
        # broadcast over any axes between (a conv's height and width).
        batch, middle = ops.shape(inputs)[0], (1,) * (len(inputs.shape) - 2)
        sign_in = self._signs((batch, *middle, self.kernel_loc.shape[-2]))
        sign_out = self._signs((batch, *middle, self.kernel_loc.shape[-1]))
        eps = keras.random.normal(self.kernel_loc.shape, seed=self.seed_generator,  # One kernel draw
                                  dtype=self.compute_dtype)  # per batch (per replica under tf.distribute).
        perturbation = ops.softplus(self.kernel_rho) * eps
        outputs = (self.linear(inputs, self.kernel_loc)
                   + self.linear(inputs * sign_in, perturbation) * sign_out)
        if self.use_bias:
            outputs = outputs + self.bias
        return self.activation(outputs)

    def kl(self, tied_mean: bool = False):
        """KL(q || N(0, prior_stddev^2)) summed over the kernel's weights: a scalar. With
        `tied_mean` the prior's mean is each weight's posterior mean (the reference
        variational WRN's prior), so the KL penalises the stddevs only."""
        scale, p = ops.softplus(self.kernel_rho), self.prior_stddev
        offset = 0.0 if tied_mean else ops.square(self.kernel_loc)
        return ops.sum(ops.log(p / scale) + (ops.square(scale) + offset) / (2 * p * p) - 0.5)

    def get_config(self):
        return {**super().get_config(),
                "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": serialize_initializer(self.kernel_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
                "prior_stddev": self.prior_stddev, "init_stddev": self.init_stddev,
                "seed": self.seed}


@keras.saving.register_keras_serializable(package="ub")
class DenseFlipout(DenseKernelMap, _FlipoutBase):
    """Dense layer with a mean-field Gaussian kernel sampled by Flipout (module docstring):
    inputs [B, ..., D] -> activation(y) [B, ..., units], signs drawn per example.

    The kernel mean starts as ``kernel_initializer`` (None: Glorot-uniform seeded from
    ``seed``, as keras Dense; a name: that initialiser seeded from ``seed``; an object: as
    given) and its stddev at ``init_stddev``. ``seed`` also seeds the noise: give every
    layer of a model its own. Regularisers (e.g. L2) act on the kernel mean and the bias.
    """

    def __init__(self, units: int, activation=None, use_bias: bool = True,
                 kernel_initializer: InitializerLike = None,
                 kernel_regularizer: RegularizerLike = None,
                 bias_regularizer: RegularizerLike = None, prior_stddev: float = 0.1,
                 init_stddev: float = 1e-3, seed: int = 0, **kwargs):
        super().__init__(activation, use_bias, kernel_initializer, kernel_regularizer,
                         bias_regularizer, prior_stddev, init_stddev, seed, **kwargs)
        self.units = check_units(units)


@keras.saving.register_keras_serializable(package="ub")
class Conv2DFlipout(Conv2DKernelMap, _FlipoutBase):
    """2-D convolution, channels last, with a mean-field Gaussian kernel [kh, kw, C_in,
    filters] sampled by Flipout (module docstring): signs per example over input channels
    and over filters.

    The kernel mean starts as ``kernel_initializer`` (None: He-normal seeded from ``seed``,
    as the repo's convolutional models; a name: seeded from ``seed``; an object: as given)
    and its stddev at ``init_stddev``. ``seed`` also seeds the noise: give every layer of a
    model its own. Regularisers (e.g. L2) act on the kernel mean and the bias.
    """

    def __init__(self, filters: int, kernel_size: int | tuple[int, int],
                 strides: int | tuple[int, int] = 1, padding: str = "same", activation=None,
                 use_bias: bool = True, kernel_initializer: InitializerLike = None,
                 kernel_regularizer: RegularizerLike = None,
                 bias_regularizer: RegularizerLike = None, prior_stddev: float = 0.1,
                 init_stddev: float = 1e-3, seed: int = 0, **kwargs):
        super().__init__(activation, use_bias, kernel_initializer, kernel_regularizer,
                         bias_regularizer, prior_stddev, init_stddev, seed, **kwargs)
        self.filters, self.kernel_size, self.strides, self.padding = conv2d_arguments(
            filters, kernel_size, strides, padding)


def flipout_kl(model: keras.layers.Layer, tied_mean: bool = False):
    """The summed ``kl(tied_mean)`` of every Flipout layer in `model`, nested models included:
    the ELBO's KL term before scaling by 1 / (number of training examples) and annealing."""
    terms = [layer.kl(tied_mean) for layer in walk(model) if isinstance(layer, _FlipoutBase)]
    if not terms:
        raise ValueError(f"{model.name} has no DenseFlipout or Conv2DFlipout layer.")
    return ops.sum(ops.stack(terms))
