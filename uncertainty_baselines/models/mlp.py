"""Multilayer perceptron, optionally a vectorised stack of independent members.

``num_members=None``: inputs [B, D] -> [B, K]. ``num_members=M`` (M >= 1): inputs
[M, B, D] -> [M, B, K], M independent MLPs (own weights, own dropout masks) evaluated by
one einsum per layer, so ensemble members and data splits train in one compiled step.

``mlp`` builds the network from a dense-layer factory and an optional output head; the
registry's method models are thin wrappers that pick them: ``mlp_gaussian`` (mean and
softplus-scale outputs, heteroscedastic Gaussian regression as in Lakshminarayanan et
al. 2017) and ``mlp_variational_gaussian`` (the same with mean-field Gaussian weights).
"""
from __future__ import annotations

from typing import Callable, Sequence

import keras
from keras import ops

from uncertainty_baselines.layers import DenseVariational, MCDropout, StackedDense

# (units, *, num_members, activation, seed, name) -> a Dense-like layer; num_members is
# None for [B, D] inputs and M for stacked [M, B, D] inputs.
DenseFactory = Callable[..., keras.layers.Layer]


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


def dense(units: int, *, num_members: int | None, activation, seed: int,
          name: str) -> keras.layers.Layer:
    """Glorot-uniform Dense layer; ``StackedDense`` (each member its own fan) when stacked."""
    if num_members is None:
        return keras.layers.Dense(units, activation=activation, name=name,
                                  kernel_initializer=keras.initializers.GlorotUniform(seed))
    return StackedDense(units, num_members, activation=activation, seed=seed, name=name)


def variational_dense(prior_stddev: float = 1.0) -> DenseFactory:
    """Factory of ``DenseVariational`` layers (mean-field Gaussian weights, N(0, prior_stddev^2)
    prior; sum ``kl()`` over the layers for the ELBO)."""
    def make(units: int, *, num_members: int | None, activation, seed: int,
             name: str) -> keras.layers.Layer:
        return DenseVariational(units, num_members=num_members, activation=activation,
                                prior_stddev=prior_stddev, seed=seed, name=name)
    return make


def mlp(input_dim: int, num_outputs: int, hidden_units: Sequence[int] = (50,),
        num_members: int | None = None, dropout_rate: float | Sequence[float] = 0.0,
        seed: int = 0, activation: str = "relu", dense_layer: DenseFactory = dense,
        head: Callable[[], keras.layers.Layer] | None = None, name: str = "mlp") -> keras.Model:
    """Builds the MLP described in the module docstring; its outputs are logits or point
    predictions unless ``head`` maps them.

    Args:
      input_dim: number of input features D.
      num_outputs: width of the last Dense layer (what ``head``, if any, receives).
      hidden_units: width of each hidden layer.
      num_members: None for one network on [B, D]; M for M stacked networks on [M, B, D].
      dropout_rate: MC dropout (active at test time) before every Dense layer, on the
        inputs and each hidden layer as in Gal & Ghahramani's UCI code; a sequence gives
        one rate per member. 0 disables it.
      seed: seeds initialisation and dropout / weight sampling (layer i uses seed + i).
      dense_layer: builds each Dense-like layer (see ``DenseFactory``).
      head: builds the layer applied to the last Dense layer's outputs.
    """
    if input_dim < 1 or num_outputs < 1 or (num_members is not None and num_members < 1):
        raise ValueError(f"input_dim, num_outputs and num_members must be >= 1, got "
                         f"{input_dim}, {num_outputs}, {num_members}.")
    if any(u < 1 for u in hidden_units):
        raise ValueError(f"hidden_units must be positive, got {tuple(hidden_units)}.")
    per_member = not isinstance(dropout_rate, (int, float))
    if per_member and len(dropout_rate) != (num_members or 1):
        raise ValueError(f"{len(dropout_rate)} dropout rates given for {num_members or 1} "
                         "members.")
    use_dropout = any(dropout_rate) if per_member else dropout_rate > 0
    shape = (input_dim,) if num_members is None else (None, input_dim)
    inputs = keras.Input(shape=shape, name="features")
    x = inputs
    widths = list(hidden_units) + [num_outputs]
    for i, units in enumerate(widths):
        if use_dropout:
            x = MCDropout(dropout_rate, seed=seed + 1000 + i, name=f"dropout_{i}")(x)
        is_last = i == len(widths) - 1
        x = dense_layer(units, num_members=num_members, activation=None if is_last else activation,
                        seed=seed + i, name="output" if is_last else f"hidden_{i}")(x)
    if head is not None:
        x = head()(x)
    return keras.Model(inputs, x, name=name)


def mlp_gaussian(input_dim: int, num_outputs: int = 1, hidden_units: Sequence[int] = (50,),
                 num_members: int | None = None, dropout_rate: float | Sequence[float] = 0.0,
                 seed: int = 0, activation: str = "relu", min_scale: float = 1e-3,
                 name: str = "mlp") -> keras.Model:
    """MLP whose last axis is [mean_1..mean_k, scale_1..scale_k] for k = ``num_outputs``
    Gaussian targets, the scales softplus(raw) + ``min_scale``."""
    return mlp(input_dim, 2 * num_outputs, hidden_units, num_members, dropout_rate, seed,
               activation, head=lambda: GaussianHead(min_scale, name="gaussian"), name=name)


def mlp_variational_gaussian(input_dim: int, num_outputs: int = 1,
                             hidden_units: Sequence[int] = (50,), num_members: int | None = None,
                             seed: int = 0, activation: str = "relu", prior_stddev: float = 1.0,
                             min_scale: float = 1e-3, name: str = "mlp") -> keras.Model:
    """``mlp_gaussian`` with mean-field Gaussian weights (``variational_dense``): a Bayes by
    Backprop regression network."""
    return mlp(input_dim, 2 * num_outputs, hidden_units, num_members, seed=seed,
               activation=activation, dense_layer=variational_dense(prior_stddev),
               head=lambda: GaussianHead(min_scale, name="gaussian"), name=name)
