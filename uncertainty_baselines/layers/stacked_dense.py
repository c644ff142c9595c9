"""A Dense layer holding an independent weight set per ensemble member.

Input [M, B, D] -> output [M, B, units]: member m's batch only meets member m's weights,
so M independent networks train in one compiled step (one einsum per layer instead of a
Python loop over models).
"""
from __future__ import annotations

import math

import keras
from keras import ops


def glorot_limit(fan_in: int, fan_out: int) -> float:
    """Half-width of the Glorot-uniform range for a [fan_in, fan_out] kernel."""
    return math.sqrt(6.0 / (fan_in + fan_out))


@keras.saving.register_keras_serializable(package="ub")
class StackedDense(keras.layers.Layer):
    """``num_members`` independent Dense layers applied member-wise to [M, B, D] inputs.

    Each member's kernel is Glorot-uniform over its own [D, units] fan (a Keras
    initializer on the [M, D, units] shape would count M as a receptive field).
    """

    def __init__(self, units: int, num_members: int, activation=None, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        if units < 1 or num_members < 1:
            raise ValueError(f"units and num_members must be >= 1, got {units}, {num_members}.")
        self.units, self.num_members, self.seed = units, num_members, seed
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[0] not in (None, self.num_members):
            raise ValueError(f"StackedDense expects inputs [num_members={self.num_members}, "
                             f"batch, features], got shape {input_shape}.")
        fan_in = input_shape[-1]
        limit = glorot_limit(fan_in, self.units)
        self.kernel = self.add_weight(
            shape=(self.num_members, fan_in, self.units), name="kernel",
            initializer=keras.initializers.RandomUniform(-limit, limit, seed=self.seed))
        self.bias = self.add_weight(shape=(self.num_members, 1, self.units), name="bias",
                                    initializer="zeros")

    def call(self, inputs):
        return self.activation(ops.einsum("mbd,mdu->mbu", inputs, self.kernel) + self.bias)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "num_members": self.num_members,
                "activation": keras.activations.serialize(self.activation), "seed": self.seed}
