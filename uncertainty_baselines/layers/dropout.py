"""Monte Carlo dropout: dropout that stays active at test time (Gal & Ghahramani, 2016)."""
from __future__ import annotations

import functools
from typing import Sequence

import keras
from keras import ops

from uncertainty_baselines.layers.common import ReplicaSeedGenerator


@keras.saving.register_keras_serializable(package="ub")
class MCDropout(keras.layers.Layer):
    """Inverted dropout applied in training AND inference, so repeated forward passes
    sample the approximate posterior predictive.

    ``rate`` is one float, or one float per ensemble member for stacked inputs
    [M, B, ...] (member m uses ``rate[m]``), which lets a dropout-rate grid train as a
    single vectorised model. ``filterwise`` drops whole channels (feature maps) per example:
    one draw per (example, channel), shared over the spatial axes.
    """

    def __init__(self, rate: float | Sequence[float], seed: int = 0, filterwise: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        rates = [rate] if isinstance(rate, (int, float)) else list(rate)
        if not rates or any(not 0.0 <= r < 1.0 for r in rates):
            raise ValueError(f"dropout rate(s) must be in [0, 1), got {rate}.")
        self.rate = rate if isinstance(rate, (int, float)) else tuple(float(r) for r in rate)
        if filterwise and len(rates) > 1:
            raise ValueError("filterwise dropout takes one rate, not per-member rates.")
        self._rates = rates
        self.seed, self.filterwise = seed, filterwise
        self.seed_generator = ReplicaSeedGenerator(seed)

    def build(self, input_shape):
        if len(self._rates) > 1 and input_shape[0] not in (None, len(self._rates)):
            raise ValueError(f"{len(self._rates)} per-member rates need inputs with leading "
                             f"axis {len(self._rates)}, got shape {input_shape}.")

    def call(self, inputs, training=None):  # `training` ignored on purpose: always on.
        member_axes = (-1,) + (1,) * (len(inputs.shape) - 1)  # Rates broadcast over the member axis.
        if keras.backend.backend() == "tensorflow":
            return _hashed_dropout(inputs, self._rates, self.seed_generator, member_axes, self.filterwise)
        shape = ops.shape(inputs)
        if self.filterwise:  # [B, 1, ..., 1, C]: one draw per example and channel.
            shape = (shape[0],) + (1,) * (len(inputs.shape) - 2) + (shape[-1],)
        rate = ops.reshape(ops.convert_to_tensor(self._rates, dtype=inputs.dtype), member_axes)
        keep = keras.random.uniform(shape, seed=self.seed_generator, dtype=inputs.dtype) >= rate
        return ops.where(keep, inputs / (1.0 - rate), ops.cast(0, inputs.dtype))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed,
                "filterwise": self.filterwise}


def _hashed_dropout(inputs, rates: Sequence[float], seed_generator: keras.random.SeedGenerator,
                    member_axes: tuple[int, ...], filterwise: bool):
    """TensorFlow's dropout: the mask comes from a keyed hash of each element's index, with a
    fresh 62-bit key per call from the layer's seed generator (one stream per replica), in one
    XLA-fused pass with the mask's application. Philox draws (TensorFlow's generator) cost as
    much per element as a 3x3 convolution on CPU and held MC dropout to 0.82 of its speed
    target; hashing and applying the mask take a third of the time of the draws and their
    application, and store no random numbers. A rate is rounded to a multiple of 2^-32 and
    kept values are scaled by the exact keep probability (in float32, also for 16-bit inputs)."""
    import tensorflow as tf
    if inputs.shape.num_elements() is not None and inputs.shape.num_elements() >= 2**31:
        raise ValueError(f"MCDropout hashes element indices as int32: input shape {inputs.shape} is too large.")
    if inputs.shape.num_elements() is None:  # A dynamic batch: checked when it runs.
        tf.debugging.assert_less(tf.size(inputs, out_type=tf.int64), tf.constant(2**31, tf.int64),
                                 "MCDropout hashes element indices as int32: the input is too large")
    key = tf.bitcast(keras.random.randint((2,), 0, 2**31 - 1, seed=seed_generator, dtype="int32"), tf.uint32)
    thresholds = [min(round(r * 2**32), 2**32 - 1) for r in rates]
    keep_prob = tf.cast(tf.reshape(tf.constant([1.0 - t / 2**32 for t in thresholds], tf.float64), member_axes),
                        tf.float32)
    return _hashed_dropout_fn(filterwise)(inputs, key, tf.reshape(tf.constant(thresholds, tf.uint32), member_axes),
                                          keep_prob)


@functools.cache
def _hashed_dropout_fn(filterwise: bool):
    """The XLA-compiled mask and application: element i (of the mask's shape, one element per
    example and channel when `filterwise`) is kept when fmix32(fmix32(i ^ k0) + k1) reaches the
    threshold; fmix32 is MurmurHash3's finalizer, so nearby indices and keys give unrelated bits."""
    import tensorflow as tf

    def fmix32(h):
        for shift, multiplier in ((16, 0x85EBCA6B), (13, 0xC2B2AE35)):
            h = tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, shift)) * tf.constant(multiplier, tf.uint32)
        return tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, 16))

    def apply(inputs, key, thresholds, keep_prob):
        shape = tf.shape(inputs)
        if filterwise:
            shape = tf.concat([shape[:1], tf.ones_like(shape[1:-1]), shape[-1:]], axis=0)
        index = tf.bitcast(tf.reshape(tf.range(tf.reduce_prod(shape)), shape), tf.uint32)
        keep = fmix32(fmix32(tf.bitwise.bitwise_xor(index, key[0])) + key[1]) >= thresholds
        scaled = tf.cast(tf.cast(inputs, tf.float32) / keep_prob, inputs.dtype)  # Exact scale in 16-bit too.
        return tf.where(keep, scaled, tf.zeros_like(inputs))
    return tf.function(apply, jit_compile=True, autograph=False)
