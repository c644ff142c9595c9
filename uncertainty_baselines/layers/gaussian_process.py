"""Random-feature Gaussian-process output layer of SNGP (Liu et al. 2020, "Simple and
principled uncertainty estimation with deterministic deep learning via distance
awareness"), and the mean-field logits it is evaluated with.

The GP with an RBF kernel of length-scale l is approximated by D random Fourier features
(Rahimi & Recht 2007) Phi(x) = sqrt(2 / D) cos(x W + b), W [d, D] with N(0, 1 / l^2)
entries (or orthogonal random features, Yu et al. 2016), b ~ U(0, 2 pi), so that
Phi(x) . Phi(x') ~ exp(-|x - x'|^2 / (2 l^2)). The logits Phi beta (+ bias) are trained
as an ordinary output layer; the posterior of beta is the Laplace (Gaussian-likelihood)
approximation with precision P = s I + sum over training examples of Phi^T Phi (ridge
penalty s), accumulated by the layer's training calls, and covariance P^-1.

Evaluation uses the predictive variance s Phi(x) P^-1 Phi(x)^T, which equals
k(x, x) - k(x, X) (k(X, X) + s I)^-1 k(X, x) for the feature kernel k = Phi Phi^T and the
training inputs X (the GP posterior with noise variance s), and ``mean_field_logits``.
"""
from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from uncertainty_baselines.layers.common import derived_seed, walk

RANDOM_FEATURE_TYPES = ("orthogonal", "fourier")


@keras.saving.register_keras_serializable(package="ub")
class OrthogonalRandomFeatures(keras.initializers.Initializer):
    """Orthogonal random features (Yu et al. 2016) for a frequency matrix W [d, D]: columns in
    blocks of d mutually orthogonal directions (Haar-distributed), each scaled by the norm
    of an independent N(0, I_d) vector and by ``stddev``; the last block is truncated.

    Each column is distributed like a N(0, stddev^2 I_d) column, as in random Fourier
    features, but orthogonality lowers the variance of the kernel estimate. As with Keras'
    random initialisers, an integer ``seed`` repeats the values on every call (``None``
    picks a random seed once).
    """

    def __init__(self, stddev: float = 1.0, seed: int | keras.random.SeedGenerator | None = None):
        if not stddev > 0:
            raise ValueError(f"stddev must be > 0, got {stddev}.")
        self.stddev = float(stddev)
        self._init_seed = seed
        self.seed = int(np.random.default_rng().integers(2**31 - 1)) if seed is None else seed

    def __call__(self, shape, dtype=None):
        if len(shape) != 2:
            raise ValueError(f"OrthogonalRandomFeatures needs a 2-D shape, got {shape}.")
        d, n = shape
        blocks = -(-n // d)
        # One draw: [..., :d] gives the directions, [..., d:] the norms.
        draw = keras.random.normal((blocks, d, 2 * d), seed=self.seed, dtype=dtype)
        q, r = ops.qr(draw[..., :d])
        # Signs of R's diagonal make Q Haar-distributed (QR alone is not).
        q = q * ops.expand_dims(ops.sign(ops.diagonal(r, axis1=-2, axis2=-1)), -2)
        norms = ops.sqrt(ops.sum(ops.square(draw[..., d:]), axis=-2))  # [blocks, d]
        columns = q * ops.expand_dims(norms, -2)  # [blocks, d, d], block i's columns
        w = ops.reshape(ops.transpose(columns, (1, 0, 2)), (d, blocks * d))
        return self.stddev * w[:, :n]

    def get_config(self):
        return {"stddev": self.stddev,
                "seed": keras.saving.serialize_keras_object(self._init_seed)}


def exact_precision(covariance_momentum: float) -> bool:
    """Whether a GP layer's `covariance_momentum` asks for the exact precision (<= 0, as in
    edward2) rather than a discounted one (in (0, 1))."""
    return covariance_momentum <= 0


@keras.saving.register_keras_serializable(package="ub")
class RandomFeatureGaussianProcess(keras.layers.Layer):
    """SNGP's output layer: inputs [B, d] -> (logits [B, units], variance [B]) (or the
    predictive covariance [B, B] with ``return_covariance``). See the module docstring.

    Inputs are optionally projected to ``input_projection_dim`` by a fixed Gaussian matrix
    (N(0, 1 / dim) entries, distance-preserving; the reference projects to 128) and
    layer-normalised (``normalize_input``, trainable scale and offset, as the reference);
    then features Phi as above with ``num_inducing`` = D features of kind
    ``random_feature_type`` and length-scale ``length_scale``. The reference Wide ResNet
    differs in two places: it draws its frequencies with standard deviation 0.05, i.e.
    length-scale 20 on the normalised inputs (its length-scale flag is unused when inputs are
    normalised), and drops the sqrt(2 / D) factor (``scale_features=False``: Phi =
    cos(x W + b), equivalent to a ridge D / 2 times larger).

    Every training call adds the batch's Phi^T Phi to the precision P: exactly
    (``covariance_momentum`` <= 0, as edward2: P = s I + the sum over the examples seen
    since the last ``reset_covariance()``, which the training loop calls at the start of
    each epoch), or discounted (momentum m in (0, 1): P <- m P + (1 - m) Phi^T Phi / batch). Under
    tf.distribute each replica adds its own batch's term (summed, resp. averaged, over the
    replicas), so P is that of the global batch; ``reset_covariance()`` must be called
    outside the replicated step. Other calls return the predictive variance
    s Phi P^-1 Phi^T; training calls return zeros in its place (no solve).

    The output kernel beta [D, units] is Glorot-uniform, seeded from ``seed`` like the
    random features; the reference has no trainable bias (``use_bias=False``).
    """

    def __init__(self, units: int, num_inducing: int = 1024, length_scale: float = 1.0,
                 random_feature_type: str = "orthogonal", scale_features: bool = True,
                 normalize_input: bool = True, input_projection_dim: int | None = None,
                 ridge_penalty: float = 1.0, covariance_momentum: float = -1.0,
                 return_covariance: bool = False, use_bias: bool = False,
                 kernel_regularizer: str | dict | keras.regularizers.Regularizer | None = None,
                 seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        if units < 1 or num_inducing < 1:
            raise ValueError(f"units and num_inducing must be >= 1, got {units}, {num_inducing}.")
        if not length_scale > 0 or not ridge_penalty > 0:
            raise ValueError(f"length_scale and ridge_penalty must be > 0, got {length_scale}, "
                             f"{ridge_penalty}.")
        if random_feature_type not in RANDOM_FEATURE_TYPES:
            raise ValueError(f"random_feature_type must be one of {RANDOM_FEATURE_TYPES}, "
                             f"got {random_feature_type!r}.")
        if not covariance_momentum < 1:
            raise ValueError(f"covariance_momentum must be <= 0 (exact) or in (0, 1) "
                             f"(discounted), got {covariance_momentum}.")
        if input_projection_dim is not None and input_projection_dim < 1:
            raise ValueError(f"input_projection_dim must be None or >= 1, got "
                             f"{input_projection_dim}.")
        self.units, self.num_inducing = units, num_inducing
        self.length_scale, self.random_feature_type = float(length_scale), random_feature_type
        self.scale_features, self.normalize_input = scale_features, normalize_input
        self.input_projection_dim = input_projection_dim
        self.ridge_penalty = float(ridge_penalty)
        self.covariance_momentum = float(covariance_momentum)
        self.return_covariance, self.use_bias = return_covariance, use_bias
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.seed = seed
        self.input_norm = keras.layers.LayerNormalization(name="input_norm") \
            if normalize_input else None

    def build(self, input_shape):
        if len(input_shape) != 2 or input_shape[-1] is None:
            raise ValueError(f"RandomFeatureGaussianProcess expects inputs [batch, features] "
                             f"with known features, got shape {input_shape}.")
        dim = input_shape[-1]
        self.projection = None
        if self.input_projection_dim is not None:
            dim = self.input_projection_dim
            self.projection = self.add_weight(
                shape=(input_shape[-1], dim), name="projection", trainable=False,
                initializer=keras.initializers.RandomNormal(
                    stddev=dim ** -0.5, seed=derived_seed(self.seed, 2)))
        if self.input_norm is not None:
            self.input_norm.build((input_shape[0], dim))
        stddev, frequency_seed = 1.0 / self.length_scale, derived_seed(self.seed, 0)
        self.frequencies = self.add_weight(
            shape=(dim, self.num_inducing), name="frequencies", trainable=False,
            initializer=OrthogonalRandomFeatures(stddev, seed=frequency_seed)
            if self.random_feature_type == "orthogonal"
            else keras.initializers.RandomNormal(stddev=stddev, seed=frequency_seed))
        self.phases = self.add_weight(
            shape=(self.num_inducing,), name="phases", trainable=False,
            initializer=keras.initializers.RandomUniform(0.0, 2 * math.pi,
                                                         seed=derived_seed(self.seed, 1)))
        self.kernel = self.add_weight(
            shape=(self.num_inducing, self.units), name="kernel",
            initializer=keras.initializers.GlorotUniform(seed=derived_seed(self.seed, 3)),
            regularizer=self.kernel_regularizer)
        self.bias = self.add_weight(shape=(self.units,), name="bias", initializer="zeros") \
            if self.use_bias else None
        # "sum": each replica's assign_add is summed; "mean": the discounted assignments
        # (each from its replica's batch) are averaged.
        self.precision = self.add_weight(
            shape=(self.num_inducing, self.num_inducing), name="precision", trainable=False,
            initializer=keras.initializers.Identity(self.ridge_penalty), autocast=False,
            aggregation="sum" if exact_precision(self.covariance_momentum) else "mean")

    def random_features(self, inputs):
        """Phi(inputs) [B, num_inducing]: projection, layer norm, cos(x W + b), scaling."""
        x = inputs
        if self.projection is not None:
            x = ops.matmul(x, self.projection)
        if self.input_norm is not None:
            x = self.input_norm(x)
        phi = ops.cos(ops.matmul(x, self.frequencies) + self.phases)
        return phi * math.sqrt(2.0 / self.num_inducing) if self.scale_features else phi

    def reset_covariance(self) -> None:
        """Set the precision back to ridge_penalty * I (the prior): at the start of each
        epoch with exact accumulation. Call it outside a tf.distribute replicated step."""
        self.precision.assign(self.ridge_penalty * ops.eye(self.num_inducing,
                                                           dtype=self.precision.dtype))

    def posterior_covariance(self):
        """The posterior covariance of the output weights, P^-1 [D, D]."""
        return ops.inv(self.precision)

    def _update_precision(self, phi) -> None:
        phi = ops.stop_gradient(ops.cast(phi, self.precision.dtype))
        gram = ops.matmul(ops.transpose(phi), phi)
        if exact_precision(self.covariance_momentum):
            variable = self.precision.value
            if hasattr(variable, "assign_add"):
                # A tf.Variable (TensorFlow backend): its assign_add adds the sum of the
                # replicas' terms. Keras' assign_add would assign the sum of P + term.
                variable.assign_add(gram)
            else:
                self.precision.assign_add(gram)
        else:
            m = self.covariance_momentum
            batch = ops.cast(ops.shape(phi)[0], phi.dtype)
            self.precision.assign(m * self.precision.value + (1.0 - m) * gram / batch)

    def call(self, inputs, training=None):
        phi = self.random_features(inputs)
        logits = ops.matmul(phi, self.kernel)
        if self.bias is not None:
            logits = logits + self.bias
        if training:
            self._update_precision(phi)
            rows = ops.shape(phi)[0]
            return logits, ops.zeros((rows, rows) if self.return_covariance else (rows,),
                                     dtype=logits.dtype)
        phi = ops.cast(phi, self.precision.dtype)
        solved = ops.solve(self.precision, ops.transpose(phi))  # P^-1 Phi^T [D, B]
        if self.return_covariance:
            uncertainty = self.ridge_penalty * ops.matmul(phi, solved)
        else:
            uncertainty = self.ridge_penalty * ops.sum(phi * ops.transpose(solved), axis=-1)
        return logits, ops.cast(uncertainty, logits.dtype)

    def compute_output_shape(self, input_shape):
        batch = input_shape[0]
        return (batch, self.units), ((batch, batch) if self.return_covariance else (batch,))

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "num_inducing": self.num_inducing, "length_scale": self.length_scale,
                "random_feature_type": self.random_feature_type,
                "scale_features": self.scale_features,
                "normalize_input": self.normalize_input,
                "input_projection_dim": self.input_projection_dim,
                "ridge_penalty": self.ridge_penalty,
                "covariance_momentum": self.covariance_momentum,
                "return_covariance": self.return_covariance, "use_bias": self.use_bias,
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "seed": self.seed}


def mean_field_logits(logits, variance, mean_field_factor: float):
    """logits / sqrt(1 + mean_field_factor * variance): the mean-field approximation of the
    predictive softmax under logit variance ``variance`` [B] (broadcast over the trailing
    axes of ``logits`` [B, ...]). pi / 8 is the probit approximation; the SNGP reference
    tunes the factor (20 on CIFAR-10); a negative factor returns the logits unchanged (the
    posterior mode)."""
    if mean_field_factor < 0:
        return logits
    logits = ops.convert_to_tensor(logits)
    variance = ops.cast(ops.convert_to_tensor(variance), logits.dtype)
    for _ in range(len(logits.shape) - len(variance.shape)):
        variance = ops.expand_dims(variance, -1)
    return logits / ops.sqrt(1.0 + mean_field_factor * variance)


@keras.saving.register_keras_serializable(package="ub")
class MeanFieldGaussianProcess(RandomFeatureGaussianProcess):
    """The random-feature GP as a plain output layer: inputs [B, d] -> logits [B, units], the
    GP's logits in training calls (which accumulate the precision) and
    ``mean_field_logits(logits, variance, mean_field_factor)`` otherwise, so a model ending
    in it trains with a cross-entropy from logits and predicts in one eval-mode pass.

    Takes RandomFeatureGaussianProcess's arguments except ``return_covariance`` (always
    False: the mean field needs the variance only); ``mean_field_factor`` as in
    ``mean_field_logits`` (negative: the posterior mode, the logits unchanged).
    """

    def __init__(self, units: int, mean_field_factor: float = math.pi / 8, **kwargs):
        if kwargs.pop("return_covariance", False):
            raise ValueError("MeanFieldGaussianProcess needs the variance, not the covariance: "
                             "return_covariance must be False.")
        super().__init__(units, **kwargs)
        self.mean_field_factor = float(mean_field_factor)

    def call(self, inputs, training=None):
        logits, variance = super().call(inputs, training=training)
        return logits if training else mean_field_logits(logits, variance, self.mean_field_factor)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def get_config(self):
        return {**super().get_config(), "mean_field_factor": self.mean_field_factor}


def reset_covariances(model: keras.layers.Layer) -> int:
    """Set the precision of every RandomFeatureGaussianProcess in `model` (nested models
    included) back to ridge_penalty * I, as SNGP does at the start of each epoch; returns how
    many layers were reset. Call it outside a tf.distribute replicated step."""
    layers = [layer for layer in walk(model) if isinstance(layer, RandomFeatureGaussianProcess)]
    for layer in layers:
        layer.reset_covariance()
    return len(layers)
