"""Deliberately broken models the sanity harness must fail (shared by the backend probe).

Each layer has a switch; the unbroken setting is the control, so a failing check is due to
the defect and not to a harness that fails everything.
"""
import keras


def mlp_with(layer_factory, seed=0):
    """A seeded 8 -> 16 -> `layer_factory()` -> 3-logit MLP builder for the harness."""
    def build():
        inputs = keras.Input((8,))
        x = keras.layers.Dense(16, activation="relu",
                               kernel_initializer=keras.initializers.HeNormal(seed))(inputs)
        x = layer_factory()(x)
        logits = keras.layers.Dense(
            3, kernel_initializer=keras.initializers.RandomNormal(stddev=0.1, seed=seed + 1))(x)
        return keras.Model(inputs, logits)
    return build


class SubtractBatchMean(keras.layers.Layer):
    """Mixes examples in every mode: a batch-mean centring (BatchNorm that forgot eval)."""

    def __init__(self, broken: bool, **kwargs):
        super().__init__(**kwargs)
        self.broken = broken

    def call(self, x):
        return x - keras.ops.mean(x, axis=0, keepdims=True) if self.broken else x


class ScaleWithFrozenOrUnusedWeight(keras.layers.Layer):
    """Has a trainable weight that receives no gradient: unused, or behind stop_gradient."""

    def __init__(self, defect: str | None, **kwargs):
        super().__init__(**kwargs)
        self.defect = defect

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones",
                                     name="scale")

    def call(self, x):
        if self.defect == "unused":
            return x
        if self.defect == "stop_gradient":
            return x * keras.ops.stop_gradient(self.scale)
        return x * self.scale


class IgnoreInput(keras.layers.Layer):
    """Returns its input times zero when broken: the logits become a learned constant."""

    def __init__(self, broken: bool, **kwargs):
        super().__init__(**kwargs)
        self.broken = broken

    def call(self, x):
        return x * 0.0 if self.broken else x
