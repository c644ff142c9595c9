"""Multilayer perceptron, optionally a vectorised stack of independent members.

``num_members == 1``: inputs [B, D] -> [B, K]. ``num_members == M > 1``: inputs
[M, B, D] -> [M, B, K], M independent MLPs (own weights, own dropout masks) evaluated by
one einsum per layer, so ensemble members and data splits train in one compiled step.
With ``gaussian_head`` the last axis is [mean_1..mean_k, scale_1..scale_k], K = 2k, the
scales softplus(raw) + ``min_scale`` (heteroscedastic Gaussian regression as in
Lakshminarayanan et al. 2017); otherwise the outputs are logits / point predictions.
"""
from __future__ import annotations

from typing import Sequence

import keras
from keras import ops

from uncertainty_baselines.layers import DenseVariational, MCDropout, StackedDense


@keras.saving.register_keras_serializable(package="ub")
class GaussianHead(keras.layers.Layer):
    """Maps raw [..., 2k] to [means, softplus(raw scales) + min_scale]."""

    def __init__(self, min_scale: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        self.min_scale = min_scale

    def call(self, raw):
        mean, raw_scale = ops.split(raw, 2, axis=-1)
        return ops.concatenate([mean, ops.softplus(raw_scale) + self.min_scale], axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "min_scale": self.min_scale}


def _dense(units: int, num_members: int, variational: bool, prior_stddev: float,
           activation, seed: int, name: str) -> keras.layers.Layer:
    if variational:
        return DenseVariational(units, num_members=None if num_members == 1 else num_members,
                                activation=activation, prior_stddev=prior_stddev, seed=seed,
                                name=name)
    if num_members == 1:
        return keras.layers.Dense(units, activation=activation, name=name,
                                  kernel_initializer=keras.initializers.GlorotUniform(seed))
    return StackedDense(units, num_members, activation=activation, seed=seed, name=name)


def mlp(input_dim: int, num_outputs: int, hidden_units: Sequence[int] = (50,),
        num_members: int = 1, dropout_rate: float | Sequence[float] = 0.0, seed: int = 0,
        activation: str = "relu", gaussian_head: bool = False, min_scale: float = 1e-3,
        variational: bool = False, prior_stddev: float = 1.0, name: str = "mlp") -> keras.Model:
    """Builds the MLP described in the module docstring.

    Args:
      input_dim: number of input features D.
      num_outputs: k outputs (2k with ``gaussian_head``).
      hidden_units: width of each hidden layer.
      num_members: M independent stacked networks (inputs [M, B, D]) when > 1.
      dropout_rate: MC dropout (active at test time) before every Dense layer, on the
        inputs and each hidden layer as in Gal & Ghahramani's UCI code; a sequence gives
        one rate per member. 0 disables it.
      seed: seeds initialisation and dropout / weight sampling (layer i uses seed + i).
      gaussian_head: output Gaussian means and softplus scales.
      min_scale: floor added to the scales.
      variational: mean-field Gaussian weights (``DenseVariational``; sum ``kl()`` over
        layers for the ELBO).
      prior_stddev: prior scale of the variational weights.
    """
    if input_dim < 1 or num_outputs < 1 or num_members < 1:
        raise ValueError(f"input_dim, num_outputs and num_members must be >= 1, got "
                         f"{input_dim}, {num_outputs}, {num_members}.")
    if any(u < 1 for u in hidden_units):
        raise ValueError(f"hidden_units must be positive, got {tuple(hidden_units)}.")
    per_member = not isinstance(dropout_rate, (int, float))
    if per_member and len(dropout_rate) != num_members:
        raise ValueError(f"{len(dropout_rate)} dropout rates given for {num_members} members.")
    use_dropout = any(dropout_rate) if per_member else dropout_rate > 0
    shape = (input_dim,) if num_members == 1 else (None, input_dim)
    inputs = keras.Input(shape=shape, name="features")
    x = inputs
    widths = list(hidden_units) + [2 * num_outputs if gaussian_head else num_outputs]
    for i, units in enumerate(widths):
        if use_dropout:
            x = MCDropout(dropout_rate, seed=seed + 1000 + i, name=f"dropout_{i}")(x)
        is_last = i == len(widths) - 1
        x = _dense(units, num_members, variational, prior_stddev,
                   None if is_last else activation, seed + i,
                   "output" if is_last else f"hidden_{i}")(x)
    if gaussian_head:
        x = GaussianHead(min_scale, name="gaussian")(x)
    return keras.Model(inputs, x, name=name)
