"""Mean-field Gaussian variational Dense layer (Blundell et al. 2015, "Bayes by Backprop").

Every weight w has a posterior N(mu, sigma^2) with sigma = softplus(rho); each call draws
one weight sample by reparameterisation (w = mu + sigma * eps), in training and at test
time, so repeated calls sample the predictive. ``kl()`` is the closed-form
KL(q || p) to the prior p = N(0, prior_stddev^2), summed over weights (per member when
stacked); the training loss adds it, scaled by 1 / (number of training examples).
"""
from __future__ import annotations

import math

import keras
from keras import ops

from uncertainty_baselines.layers.stacked_dense import glorot_limit


def inverse_softplus(value: float) -> float:
    """rho such that softplus(rho) == value (value > 0)."""
    return math.log(math.expm1(value))


@keras.saving.register_keras_serializable(package="ub")
class DenseVariational(keras.layers.Layer):
    """Dense layer with factorised Gaussian weights and biases.

    ``num_members=None``: inputs [B, D] -> [B, units]. ``num_members=M``: independent
    posteriors per member, inputs [M, B, D] -> [M, B, units], one weight sample per
    member per call (shared across that member's batch).
    """

    def __init__(self, units: int, num_members: int | None = None, activation=None,
                 prior_stddev: float = 1.0, init_stddev: float = 1e-3, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        if units < 1 or (num_members is not None and num_members < 1):
            raise ValueError(f"units and num_members must be >= 1, got {units}, {num_members}.")
        if prior_stddev <= 0 or init_stddev <= 0:
            raise ValueError(f"prior_stddev and init_stddev must be > 0, got {prior_stddev}, "
                             f"{init_stddev}.")
        self.units, self.num_members = units, num_members
        self.prior_stddev, self.init_stddev, self.seed = prior_stddev, init_stddev, seed
        self.activation = keras.activations.get(activation)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        fan_in = input_shape[-1]
        lead = () if self.num_members is None else (self.num_members,)
        if self.num_members is not None and (
                len(input_shape) != 3 or input_shape[0] not in (None, self.num_members)):
            raise ValueError(f"Expected inputs [num_members={self.num_members}, batch, "
                             f"features], got shape {input_shape}.")
        limit = glorot_limit(fan_in, self.units)
        rho = keras.initializers.Constant(inverse_softplus(self.init_stddev))
        self.kernel_loc = self.add_weight(
            shape=lead + (fan_in, self.units), name="kernel_loc",
            initializer=keras.initializers.RandomUniform(-limit, limit, seed=self.seed))
        self.kernel_rho = self.add_weight(shape=lead + (fan_in, self.units), name="kernel_rho",
                                          initializer=rho)
        bias_shape = lead + ((1, self.units) if lead else (self.units,))
        self.bias_loc = self.add_weight(shape=bias_shape, name="bias_loc", initializer="zeros")
        self.bias_rho = self.add_weight(shape=bias_shape, name="bias_rho", initializer=rho)

    def _sample(self, loc, rho):
        eps = keras.random.normal(ops.shape(loc), seed=self.seed_generator, dtype=loc.dtype)
        return loc + ops.softplus(rho) * eps

    def call(self, inputs):
        kernel = self._sample(self.kernel_loc, self.kernel_rho)
        bias = self._sample(self.bias_loc, self.bias_rho)
        equation = "bd,du->bu" if self.num_members is None else "mbd,mdu->mbu"
        return self.activation(ops.einsum(equation, inputs, kernel) + bias)

    def kl(self):
        """KL(q || prior) summed over weights: a scalar, or [M] when stacked."""
        def kl_sum(loc, rho):
            scale = ops.softplus(rho)
            p = self.prior_stddev
            kl = ops.log(p / scale) + (ops.square(scale) + ops.square(loc)) / (2 * p * p) - 0.5
            axes = tuple(range(1 if self.num_members else 0, len(loc.shape)))
            return ops.sum(kl, axis=axes)
        return (kl_sum(self.kernel_loc, self.kernel_rho)
                + kl_sum(self.bias_loc, self.bias_rho))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "num_members": self.num_members,
                "activation": keras.activations.serialize(self.activation),
                "prior_stddev": self.prior_stddev, "init_stddev": self.init_stddev,
                "seed": self.seed}
