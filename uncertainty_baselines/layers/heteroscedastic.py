"""Heteroscedastic softmax output layer (Collier et al. 2021, "Correlated input-dependent
label noise in large-scale image classification").

The logits of an example x are Gaussian with an input-dependent, low-rank-plus-diagonal
covariance, so the head can model label noise that is correlated across classes:

    l = mu(x) + V(x) z + d(x) * e,    z ~ N(0, I_R), e ~ N(0, I_K),

with mu(x) a Dense layer [K], V(x) = reshape(Dense_{K*R}(x), [K, R]) and
d(x) = softplus(Dense_K(x)) + min_scale. The predictive probability is the expectation of
softmax(l / temperature), estimated with S Monte-Carlo samples in training and at
inference alike.

As the reference model (its ``share_samples_across_batch=True``), the standard-normal draws
z [S, R] and e [S, K] are shared by every example of a call: each example's estimate is
still an average of S independent samples of its own logit distribution (unbiased, with
the same variance), but the examples' errors are correlated. Sharing is also what makes
the head cheap: S * (R + K) normal draws instead of S * B * (R + K), and the low-rank noise
of the whole batch is one [B*K, R] x [R, S] matmul. The logits, [B, K, S], remain
O(S * B * K) time and memory per call.
"""
from __future__ import annotations

import math

import keras
from keras import ops

from uncertainty_baselines.layers.common import (InitializerLike, RegularizerLike,
                                                 check_initializer, derived_seed,
                                                 is_seeded_random, resolve_initializer,
                                                 serialize_initializer, with_seed)


@keras.saving.register_keras_serializable(package="ub")
class HeteroscedasticSoftmax(keras.layers.Layer):
    """Monte-Carlo heteroscedastic softmax head: features [B, D] -> log p [B, K], where
    p = mean over S samples of softmax((mu + V z_s + d * e_s) / temperature), the draws
    z_s, e_s shared across the batch as in the reference (module docstring).

    The output is the log of the MC-averaged probability, computed stably as
    logsumexp_s(log_softmax(l_s / T)) - log S. It is normalised (logsumexp over classes is
    0), so softmax(output) = p and it can stand for logits: a cross-entropy from logits on
    it is -log p_y. Defaults are the reference's (6 factors, temperature 1.3, 10,000
    samples, min_scale 1e-3 as edward2's MIN_SCALE_MONTE_CARLO); ``num_factors=0`` keeps
    the diagonal noise only.

    The three Dense kernels (location, factors, diagonal) start as ``kernel_initializer``
    (None: Glorot-uniform as keras Dense) with independent draws seeded from ``seed``
    (an initialiser object with an integer seed: itself for the location kernel, derived
    seeds for the others); biases start at zero. ``seed`` also seeds the noise. The
    regularisers act on all three kernels and biases.
    """

    def __init__(self, num_classes: int, num_factors: int = 6, temperature: float = 1.3,
                 num_mc_samples: int = 10_000, min_scale: float = 1e-3,
                 kernel_initializer: InitializerLike = None,
                 kernel_regularizer: RegularizerLike = None,
                 bias_regularizer: RegularizerLike = None, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        errors = [message for bad, message in [
            (num_classes < 1, f"num_classes must be >= 1, got {num_classes}"),
            (num_factors < 0, f"num_factors must be >= 0, got {num_factors}"),
            (not temperature > 0, f"temperature must be > 0, got {temperature}"),
            (num_mc_samples < 1, f"num_mc_samples must be >= 1, got {num_mc_samples}"),
            (not min_scale >= 0, f"min_scale must be >= 0, got {min_scale}")] if bad]
        if errors:
            raise ValueError("; ".join(errors) + ".")
        self.num_classes, self.num_factors = num_classes, num_factors
        self.temperature, self.num_mc_samples = float(temperature), num_mc_samples
        self.min_scale, self.seed = float(min_scale), seed
        self.kernel_initializer = check_initializer(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)

        def dense(units: int, stream: int, name: str) -> keras.layers.Dense:
            return keras.layers.Dense(units, kernel_initializer=self._initializer(stream),
                                      kernel_regularizer=self.kernel_regularizer,
                                      bias_regularizer=self.bias_regularizer, name=name)
        self.loc_layer = dense(num_classes, 0, "loc")
        self.factor_layer = dense(num_classes * num_factors, 1, "factors") \
            if num_factors else None
        self.diag_layer = dense(num_classes, 2, "diag")
        self.seed_generator = keras.random.SeedGenerator(derived_seed(seed, 3))

    def _initializer(self, stream: int) -> keras.initializers.Initializer:
        """The kernel initialiser of the `stream`-th Dense (0: location, 1: factors, 2:
        diagonal), an independent draw for each stream when the initialiser is seeded."""
        init = resolve_initializer(self.kernel_initializer,
                                   lambda s: keras.initializers.GlorotUniform(seed=s), self.seed)
        if stream and is_seeded_random(init):
            return with_seed(init, derived_seed(init.seed, stream))
        return init

    def build(self, input_shape):
        if len(input_shape) != 2 or input_shape[-1] is None:
            raise ValueError(f"HeteroscedasticSoftmax expects inputs [batch, features] with "
                             f"known features, got shape {input_shape}.")
        for layer in (self.loc_layer, self.factor_layer, self.diag_layer):
            if layer is not None:
                layer.build(input_shape)

    def call(self, inputs):
        samples, scale = self.num_mc_samples, 1.0 / self.temperature
        loc = self.loc_layer(inputs) * scale  # [B, K], everything already divided by T
        diag = (ops.softplus(self.diag_layer(inputs)) + self.min_scale) * scale
        e = keras.random.normal((samples, self.num_classes), seed=self.seed_generator,
                                dtype=loc.dtype)  # [S, K], shared by the batch
        logits = ops.expand_dims(loc, -1) + ops.expand_dims(diag, -1) * ops.transpose(e)
        if self.factor_layer is not None:
            factors = ops.reshape(self.factor_layer(inputs) * scale,
                                  (-1, self.num_factors))  # [B*K, R]
            z = keras.random.normal((samples, self.num_factors), seed=self.seed_generator,
                                    dtype=loc.dtype)  # [S, R], shared by the batch
            logits = logits + ops.reshape(ops.matmul(factors, ops.transpose(z)),
                                          (-1, self.num_classes, samples))
        # [B, K, S]: log-softmax over classes, then the log of the mean over samples.
        log_probs = logits - ops.logsumexp(logits, axis=1, keepdims=True)
        return ops.logsumexp(log_probs, axis=-1) - math.log(samples)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "num_factors": self.num_factors, "temperature": self.temperature,
                "num_mc_samples": self.num_mc_samples, "min_scale": self.min_scale,
                "kernel_initializer": serialize_initializer(self.kernel_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
                "seed": self.seed}
