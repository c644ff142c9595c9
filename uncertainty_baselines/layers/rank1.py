"""Rank-1 Bayesian Dense and Conv2D layers (Dusenberry et al. 2020, "Efficient and scalable
Bayesian neural nets with rank-1 factors").

M members share one deterministic kernel W; member m owns rank-1 multiplicative factors
alpha_m (input side) and gamma_m (output side) with trainable posteriors, and a
deterministic bias b_m. Every example n of member m draws its own factors, so its output
is activation(((x_n * alpha_n) W) * gamma_n + b_m), like a BatchEnsemble member whose fast
weights are random. Posteriors are N(loc, scale^2) ("normal") or Cauchy(loc, scale)
("cauchy"), with scale = softplus(rho); the prior is the same family with location
``prior_mean`` and scale ``prior_stddev``. Samples are drawn by reparameterisation
(loc + scale * noise) and clipped to [-max_perturbation, max_perturbation] as the
reference does, in training and at inference; ``deterministic=True`` uses the posterior
locations instead.

Inputs are member-major tiled as in ``batchensemble.py``: a batch of N = M * B rows where
rows [m*B, (m+1)*B) belong to member m. ``kl()`` is the closed-form KL(q || p) of a layer's
factors; the ELBO adds ``rank1_kl(model)`` divided by the number of training
examples (and annealed).

Arguments of both layers: factor locations start from ``loc_initializer`` (None:
``sign_initializer(random_sign_init)``, for the reference's default 1/2 random
signs, +1 with that probability, else -1; alpha and gamma take independent draws) and
scales at ``init_stddev`` (default: the reference's, below); ``prior_mean`` and
``prior_stddev`` are the prior's location and scale (reference: N(1, 0.1^2)).
Initialisers given by name or left None are seeded from ``seed``, which also seeds the
sampling: give every layer of a model its own. The regularisers (e.g. L2) act on the shared
kernel and the member biases; the factors are regularised by the KL term. With one member,
unit factor locations and ``deterministic=True`` a layer is the plain keras Dense or
Conv2D.
"""
from __future__ import annotations

import math
from typing import Callable

import keras
from keras import ops

from uncertainty_baselines.layers.batchensemble import random_sign_init_error, sign_initializer
from uncertainty_baselines.layers.common import (Conv2DKernelMap, DenseKernelMap, InitializerLike,
                                                 RegularizerLike, ReplicaSeedGenerator,
                                                 check_initializer, check_member_batch,
                                                 check_units, conv2d_arguments, derived_seed,
                                                 next_draw, resolve_initializer,
                                                 serialize_initializer, walk)
from uncertainty_baselines.layers.variational import inverse_softplus

DISTRIBUTIONS = ("normal", "cauchy")
# The reference's "dropout-like" initial scale: Gaussian dropout of rate p = 1e-3 multiplies
# by N(1, p / (1 - p)), so the factors start with stddev sqrt(p / (1 - p)) ~ 0.0316.
REFERENCE_INIT_STDDEV = math.sqrt(1e-3 / (1 - 1e-3))


class _Rank1Base(keras.layers.Layer):
    """Shared arguments, factor posteriors, sampling and KL of the rank-1 layers; a subclass
    mixes in the shared kernel's map (``DenseKernelMap`` or ``Conv2DKernelMap``)."""

    kernel_shape: Callable
    add_kernel: Callable
    linear: Callable

    def __init__(self, ensemble_size: int, activation=None, use_bias: bool = True,
                 distribution: str = "normal", prior_mean: float = 1.0,
                 prior_stddev: float = 0.1, init_stddev: float = REFERENCE_INIT_STDDEV,
                 loc_initializer: InitializerLike = None,
                 kernel_initializer: InitializerLike = None,
                 kernel_regularizer: RegularizerLike = None,
                 bias_regularizer: RegularizerLike = None, max_perturbation: float = 10.0,
                 deterministic: bool = False, seed: int = 0, random_sign_init: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.random_sign_init = float(random_sign_init)  # of the default location init.
        sign_error = random_sign_init_error(random_sign_init)
        errors = [message for bad, message in [
            (ensemble_size < 1, f"ensemble_size must be >= 1, got {ensemble_size}"),
            (distribution not in DISTRIBUTIONS,
             f"distribution must be one of {DISTRIBUTIONS}, got {distribution!r}"),
            (not prior_stddev > 0, f"prior_stddev must be > 0, got {prior_stddev}"),
            (not init_stddev > 0, f"init_stddev must be > 0, got {init_stddev}"),
            (not max_perturbation > 0,
             f"max_perturbation must be > 0, got {max_perturbation}"),
            (bool(sign_error), sign_error)] if bad]
        if errors:
            raise ValueError("; ".join(errors) + ".")
        self.ensemble_size, self.use_bias, self.distribution = ensemble_size, use_bias, distribution
        self.prior_mean, self.prior_stddev = float(prior_mean), float(prior_stddev)
        self.init_stddev, self.max_perturbation = float(init_stddev), float(max_perturbation)
        self.deterministic, self.seed = deterministic, seed
        self.activation = keras.activations.get(activation)
        self.loc_initializer = check_initializer(loc_initializer)
        self.kernel_initializer = check_initializer(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.seed_generator = ReplicaSeedGenerator(derived_seed(seed, 2))

    def build(self, input_shape):
        """The shared kernel; alpha_loc, alpha_rho [M, in]; gamma_loc, gamma_rho and the
        member biases [M, out]."""
        kernel_shape = self.kernel_shape(input_shape)
        check_member_batch(self, input_shape[0])
        self.kernel = self.add_kernel(kernel_shape)
        loc_init = resolve_initializer(
            self.loc_initializer, lambda s: sign_initializer(self.random_sign_init, s),
            derived_seed(self.seed, 1))
        rho_init = keras.initializers.Constant(inverse_softplus(self.init_stddev))
        m, (fan_in, fan_out) = self.ensemble_size, kernel_shape[-2:]
        self.alpha_loc = self.add_weight(shape=(m, fan_in), name="alpha_loc",
                                         initializer=loc_init)
        self.alpha_rho = self.add_weight(shape=(m, fan_in), name="alpha_rho",
                                         initializer=rho_init)
        self.gamma_loc = self.add_weight(shape=(m, fan_out), name="gamma_loc",
                                         initializer=next_draw(loc_init))
        self.gamma_rho = self.add_weight(shape=(m, fan_out), name="gamma_rho",
                                         initializer=rho_init)
        self.bias = self.add_weight(shape=(m, fan_out), name="bias", initializer="zeros",
                                    regularizer=self.bias_regularizer) if self.use_bias else None

    def _factors(self, loc, rho, rows, middle: int):
        """Factors [M, rows, 1, ..., 1, D] (`middle` ones, broadcast over a conv's height
        and width): one posterior sample per example, or the locations when deterministic."""
        m, d = loc.shape
        if self.deterministic:
            return ops.reshape(loc, (m, 1) + (1,) * middle + (d,))
        shape = (m, rows, d)
        if self.distribution == "normal":
            noise = keras.random.normal(shape, seed=self.seed_generator, dtype=loc.dtype)
        else:  # Inverse CDF of the standard Cauchy.
            u = keras.random.uniform(shape, seed=self.seed_generator, dtype=loc.dtype)
            noise = ops.tan(math.pi * (u - 0.5))
        sample = ops.clip(loc[:, None] + ops.softplus(rho)[:, None] * noise,
                          -self.max_perturbation, self.max_perturbation)
        return ops.reshape(sample, (m, -1) + (1,) * middle + (d,))

    def call(self, inputs):
        check_member_batch(self, inputs.shape[0])
        m, row_shape = self.ensemble_size, ops.shape(inputs)[1:]
        middle = len(inputs.shape) - 2  # axes between batch and features (a conv's H, W)
        x = ops.reshape(inputs, (m, -1, *row_shape))  # [M, B, ..., D_in]
        rows = ops.shape(x)[1]
        x = x * self._factors(self.alpha_loc, self.alpha_rho, rows, middle)
        y = self.linear(ops.reshape(x, (-1, *row_shape)), self.kernel)
        y = ops.reshape(y, (m, -1, *ops.shape(y)[1:]))
        y = y * self._factors(self.gamma_loc, self.gamma_rho, rows, middle)
        if self.use_bias:
            y = y + ops.reshape(self.bias, (m, 1) + (1,) * middle + (-1,))
        return self.activation(ops.reshape(y, (-1, *ops.shape(y)[2:])))

    def kl(self):
        """KL(q || prior) of the factors alpha and gamma, summed over members and
        elements (closed form for both families): a scalar."""
        def kl_sum(loc, rho):
            scale, p, offset = ops.softplus(rho), self.prior_stddev, loc - self.prior_mean
            if self.distribution == "normal":
                kl = (ops.log(p / scale)
                      + (ops.square(scale) + ops.square(offset)) / (2 * p * p) - 0.5)
            else:  # Chyzak & Nielsen (2019): log(((s + p)^2 + (l - m)^2) / (4 s p)).
                kl = ops.log((ops.square(scale + p) + ops.square(offset)) / (4 * scale * p))
            return ops.sum(kl)
        return kl_sum(self.alpha_loc, self.alpha_rho) + kl_sum(self.gamma_loc, self.gamma_rho)

    def get_config(self):
        return {**super().get_config(), "ensemble_size": self.ensemble_size,
                "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias, "distribution": self.distribution,
                "prior_mean": self.prior_mean, "prior_stddev": self.prior_stddev,
                "init_stddev": self.init_stddev,
                "loc_initializer": serialize_initializer(self.loc_initializer),
                "kernel_initializer": serialize_initializer(self.kernel_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
                "max_perturbation": self.max_perturbation,
                "deterministic": self.deterministic, "seed": self.seed,
                "random_sign_init": self.random_sign_init}


@keras.saving.register_keras_serializable(package="ub")
class DenseRank1(DenseKernelMap, _Rank1Base):
    """Rank-1 Bayesian Dense layer (module docstring): member m maps its rows x to
    activation(((x * alpha) @ W) * gamma + b_m), alpha ~ q(alpha_m), gamma ~ q(gamma_m)
    per example, one shared kernel W [D, units] (default init Glorot-uniform, as keras
    Dense). Inputs [M*B, ..., D] (member-major tiled) -> [M*B, ..., units]; arguments as
    in the module docstring.
    """

    def __init__(self, units: int, ensemble_size: int, activation=None, use_bias: bool = True,
                 distribution: str = "normal", prior_mean: float = 1.0,
                 prior_stddev: float = 0.1, init_stddev: float = REFERENCE_INIT_STDDEV,
                 loc_initializer: InitializerLike = None,
                 kernel_initializer: InitializerLike = None,
                 kernel_regularizer: RegularizerLike = None,
                 bias_regularizer: RegularizerLike = None, max_perturbation: float = 10.0,
                 deterministic: bool = False, seed: int = 0, **kwargs):
        super().__init__(ensemble_size, activation, use_bias, distribution, prior_mean,
                         prior_stddev, init_stddev, loc_initializer, kernel_initializer,
                         kernel_regularizer, bias_regularizer, max_perturbation,
                         deterministic, seed, **kwargs)
        self.units = check_units(units)


@keras.saving.register_keras_serializable(package="ub")
class Conv2DRank1(Conv2DKernelMap, _Rank1Base):
    """Rank-1 Bayesian 2-D convolution, channels last (module docstring): member m maps
    its rows x to activation(conv(x * alpha, W) * gamma + b_m), alpha over input channels,
    gamma and b_m over filters, drawn per example; one shared kernel W [kh, kw, C_in,
    filters] (default init He-normal, as the repo's convolutional models).
    Inputs [M*B, H, W, C_in] (member-major tiled); arguments as in the module docstring.
    """

    def __init__(self, filters: int, kernel_size: int | tuple[int, int], ensemble_size: int,
                 strides: int | tuple[int, int] = 1, padding: str = "same", activation=None,
                 use_bias: bool = True, distribution: str = "normal", prior_mean: float = 1.0,
                 prior_stddev: float = 0.1, init_stddev: float = REFERENCE_INIT_STDDEV,
                 loc_initializer: InitializerLike = None,
                 kernel_initializer: InitializerLike = None,
                 kernel_regularizer: RegularizerLike = None,
                 bias_regularizer: RegularizerLike = None, max_perturbation: float = 10.0,
                 deterministic: bool = False, seed: int = 0, **kwargs):
        super().__init__(ensemble_size, activation, use_bias, distribution, prior_mean,
                         prior_stddev, init_stddev, loc_initializer, kernel_initializer,
                         kernel_regularizer, bias_regularizer, max_perturbation,
                         deterministic, seed, **kwargs)
        self.filters, self.kernel_size, self.strides, self.padding = conv2d_arguments(
            filters, kernel_size, strides, padding)


def rank1_kl(model: keras.layers.Layer):
    """The summed ``kl()`` of every rank-1 layer in `model`, nested models included: the
    ELBO's KL term before scaling by 1 / (number of training examples) and annealing."""
    terms = [layer.kl() for layer in walk(model) if isinstance(layer, _Rank1Base)]
    if not terms:
        raise ValueError(f"{model.name} has no DenseRank1 or Conv2DRank1 layer.")
    return ops.sum(ops.stack(terms))
