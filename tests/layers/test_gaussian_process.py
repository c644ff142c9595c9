"""Random-feature GP layer: its features against the formula and the RBF kernel, orthogonal
random features, the posterior precision and covariance against NumPy from the layer's own
features (exact and discounted, reset), the predictive variance against the GP posterior,
mean-field logits (and the layer returning them), serialisation, the precision summed over
tf.distribute replicas, and the SNGP layers on the JAX and PyTorch backends."""
import math
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from uncertainty_baselines.layers import (MeanFieldGaussianProcess, OrthogonalRandomFeatures,
                                          RandomFeatureGaussianProcess, mean_field_logits,
                                          reset_covariances)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
D = 16  # random features in the posterior tests


def to_np(x) -> np.ndarray:
    return keras.ops.convert_to_numpy(x)


def normal(seed: int, *shape: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def gp(**kwargs) -> RandomFeatureGaussianProcess:
    return RandomFeatureGaussianProcess(3, **{"num_inducing": D, "seed": 1, **kwargs})


def features(layer, x) -> np.ndarray:
    return to_np(layer.random_features(x)).astype(np.float64)


# ----- random features ----------------------------------------------------------------------------
@pytest.mark.parametrize("scale_features", [True, False])
def test_features_are_scaled_cosines_of_the_layers_frequencies(scale_features):
    layer = gp(normalize_input=False, length_scale=0.5, scale_features=scale_features)
    x = normal(0, 4, 5)
    layer.build(x.shape)
    w, b = to_np(layer.frequencies), to_np(layer.phases)
    scale = math.sqrt(2 / D) if scale_features else 1.0
    np.testing.assert_allclose(features(layer, x), scale * np.cos(x @ w + b), rtol=1e-5,
                               atol=1e-6)
    assert w.shape == (5, D) and 0 <= b.min() and b.max() <= 2 * np.pi


def test_projection_and_layer_norm_come_before_the_features():
    layer = gp(input_projection_dim=3)
    x = normal(1, 4, 6)
    layer.build(x.shape)
    h = x @ to_np(layer.projection)
    h = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-3)  # gamma 1
    expected = math.sqrt(2 / D) * np.cos(h @ to_np(layer.frequencies) + to_np(layer.phases))
    np.testing.assert_allclose(features(layer, x), expected, rtol=1e-4, atol=1e-5)
    assert to_np(layer.projection).shape == (6, 3)
    assert {w.name for w in layer.trainable_weights} == {"kernel", "gamma", "beta"}


@pytest.mark.parametrize("kind", ["orthogonal", "fourier"])
def test_features_approximate_the_rbf_kernel_of_the_length_scale(kind):
    length_scale = 0.8
    layer = RandomFeatureGaussianProcess(2, num_inducing=4096, length_scale=length_scale,
                                         random_feature_type=kind, normalize_input=False,
                                         seed=3)
    x = normal(2, 12, 3) * 0.6
    layer.build(x.shape)
    phi = features(layer, x)
    sq_dist = ((x[:, None] - x[None]) ** 2).sum(-1)
    rbf = np.exp(-sq_dist / (2 * length_scale ** 2))
    # Monte Carlo error of each entry ~ 1 / sqrt(2 D) ~ 0.011.
    assert np.abs(phi @ phi.T - rbf).max() < 0.06


def test_orthogonal_random_features_are_orthogonal_within_each_block():
    d, n, stddev = 4, 10, 2.0
    w = to_np(OrthogonalRandomFeatures(stddev, seed=0)((d, n))).astype(np.float64)
    for block in (slice(0, 4), slice(4, 8), slice(8, 10)):  # the last block is truncated
        gram = w[:, block].T @ w[:, block]
        np.testing.assert_allclose(gram - np.diag(np.diag(gram)), 0, atol=1e-4)
    assert np.abs(w[:, :4].T @ w[:, 4:8]).max() > 0.1  # blocks are independent
    np.testing.assert_array_equal(w, to_np(OrthogonalRandomFeatures(stddev, seed=0)((d, n))))
    # Column norms: stddev * chi with d degrees of freedom, E|w|^2 = stddev^2 d; over 4,000
    # columns the s.d. of the mean of |w|^2 / stddev^2 is sqrt(2 d / 4000) ~ 0.045.
    many = to_np(OrthogonalRandomFeatures(stddev, seed=1)((d, 4000)))
    assert abs((many ** 2).sum(0).mean() / stddev ** 2 - d) < 0.3


def test_layer_frequencies_are_orthogonal_random_features_only_when_asked():
    grams = {}
    for kind in ("orthogonal", "fourier"):
        layer = gp(random_feature_type=kind, length_scale=2.0)
        layer.build((None, 8))
        w = to_np(layer.frequencies).astype(np.float64)
        grams[kind] = w[:, :8].T @ w[:, :8]
    off_diagonal = {k: np.abs(g - np.diag(np.diag(g))).max() for k, g in grams.items()}
    assert off_diagonal["orthogonal"] < 1e-5 and off_diagonal["fourier"] > 0.05


# ----- posterior precision and covariance ---------------------------------------------------------
@pytest.mark.parametrize("momentum", [-1.0, 0.0])
def test_exact_precision_is_the_ridge_plus_the_sum_of_feature_outer_products(momentum):
    """Momentum <= 0 (0 included, as edward2) accumulates exactly."""
    layer = gp(ridge_penalty=0.5, covariance_momentum=momentum)
    batches = [normal(3, 5, 4), normal(4, 7, 4)]
    for x in batches:
        logits, variance = layer(x, training=True)
        np.testing.assert_array_equal(to_np(variance), np.zeros(len(x)))  # no solve in training
    phi = np.concatenate([features(layer, x) for x in batches])
    precision = 0.5 * np.eye(D) + phi.T @ phi
    np.testing.assert_allclose(to_np(layer.precision), precision, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(to_np(layer.posterior_covariance()), np.linalg.inv(precision),
                               rtol=1e-3, atol=1e-5)
    layer(batches[0], training=False)  # inference leaves the precision alone
    layer(batches[0])
    np.testing.assert_allclose(to_np(layer.precision), precision, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("return_covariance", [False, True])
def test_predictive_covariance_is_the_gp_posterior_of_the_feature_kernel(return_covariance):
    ridge = 0.5
    layer = gp(ridge_penalty=ridge, return_covariance=return_covariance)
    train, test = normal(5, 12, 4), normal(6, 5, 4)
    layer(train, training=True)
    logits, uncertainty = layer(test)
    phi_train, phi_test = features(layer, train), features(layer, test)
    covariance = ridge * phi_test @ np.linalg.inv(ridge * np.eye(D) + phi_train.T @ phi_train) \
        @ phi_test.T
    # The same as the GP posterior with kernel k = Phi Phi^T and noise variance = ridge:
    k_tt, k_tn, k_nn = (a @ b.T for a, b in ((phi_test, phi_test), (phi_test, phi_train),
                                              (phi_train, phi_train)))
    gp_posterior = k_tt - k_tn @ np.linalg.solve(k_nn + ridge * np.eye(len(train)), k_tn.T)
    np.testing.assert_allclose(covariance, gp_posterior, atol=1e-10)
    expected = covariance if return_covariance else np.diag(covariance)
    np.testing.assert_allclose(to_np(uncertainty), expected, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(to_np(logits), phi_test @ to_np(layer.kernel), rtol=1e-5,
                               atol=1e-6)


def test_discounted_precision_follows_its_recurrence():
    m, ridge = 0.9, 2.0
    layer = gp(ridge_penalty=ridge, covariance_momentum=m)
    expected = ridge * np.eye(D)
    for seed, rows in ((7, 3), (8, 6), (9, 4)):
        x = normal(seed, rows, 4)
        layer(x, training=True)
        phi = features(layer, x)
        expected = m * expected + (1 - m) * phi.T @ phi / rows
    np.testing.assert_allclose(to_np(layer.precision), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("momentum", [-1.0, 0.0, 0.5])
def test_reset_restores_the_prior_precision(momentum):
    layer = gp(ridge_penalty=3.0, covariance_momentum=momentum)
    x = normal(10, 6, 4)
    layer(x, training=True)
    assert not np.allclose(to_np(layer.precision), 3.0 * np.eye(D))
    layer.reset_covariance()
    np.testing.assert_array_equal(to_np(layer.precision), 3.0 * np.eye(D))
    layer(x, training=True)  # accumulation starts afresh
    phi = features(layer, x)
    expected = 3.0 * np.eye(D) + (phi.T @ phi if momentum <= 0 else
                                  -0.5 * 3.0 * np.eye(D) + 0.5 * phi.T @ phi / 6)
    np.testing.assert_allclose(to_np(layer.precision), expected, rtol=1e-5, atol=1e-5)


def test_logits_have_a_trainable_output_kernel_and_optional_bias():
    layer = gp(use_bias=True, normalize_input=False)
    x = normal(11, 4, 4)
    layer.build(x.shape)
    layer.bias.assign(np.array([1.0, -1.0, 0.5], np.float32))
    logits, _ = layer(x)
    np.testing.assert_allclose(to_np(logits), features(layer, x) @ to_np(layer.kernel)
                               + [1.0, -1.0, 0.5], rtol=1e-5, atol=1e-5)
    assert {w.name for w in layer.trainable_weights} == {"kernel", "bias"}
    assert {w.name for w in layer.non_trainable_weights} == {"frequencies", "phases",
                                                             "precision"}
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, training=True)[0] ** 2)
    assert all(g is not None for g in tape.gradient(loss, layer.trainable_weights))


# ----- mean-field logits --------------------------------------------------------------------------
@pytest.mark.parametrize("factor", [math.pi / 8, 20.0, 0.0])
def test_mean_field_logits_formula(factor):
    logits, variance = normal(12, 4, 3), np.abs(normal(13, 4))
    expected = logits / np.sqrt(1 + factor * variance)[:, None]
    np.testing.assert_allclose(to_np(mean_field_logits(logits, variance, factor)), expected,
                               rtol=1e-6)
    stacked = normal(14, 4, 2, 3)  # [B, M, K]: the variance broadcasts over trailing axes
    np.testing.assert_allclose(to_np(mean_field_logits(stacked, variance, factor)),
                               stacked / np.sqrt(1 + factor * variance)[:, None, None],
                               rtol=1e-6)


def test_negative_mean_field_factor_returns_the_logits():
    logits = normal(15, 4, 3)
    np.testing.assert_array_equal(to_np(mean_field_logits(logits, np.ones(4), -1.0)), logits)


# ----- serialisation and arguments ----------------------------------------------------------------
def test_config_round_trip_and_saved_model_keep_features_and_precision(tmp_path):
    layer = gp(length_scale=2.0, random_feature_type="fourier", scale_features=False,
               input_projection_dim=3, ridge_penalty=0.5, covariance_momentum=0.99,
               return_covariance=True, use_bias=True,
               kernel_regularizer=keras.regularizers.L2(1e-4), seed=4)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(clone) is RandomFeatureGaussianProcess
    assert clone.get_config() == layer.get_config()
    x = normal(16, 5, 6)
    # Seeded: the config alone reproduces the random features and initial weights.
    np.testing.assert_array_equal(to_np(clone(x)[0]), to_np(layer(x)[0]))
    inputs = keras.Input((6,))
    model = keras.Model(inputs, layer(inputs))
    model(x, training=True)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    for a, b in zip(model(x), loaded(x)):
        np.testing.assert_array_equal(to_np(a), to_np(b))
    assert layer.losses and len(model.outputs) == 2


def test_bad_arguments_raise():
    for kwargs, match in (({"num_inducing": 0}, "num_inducing"),
                          ({"length_scale": 0.0}, "length_scale"),
                          ({"ridge_penalty": -1.0}, "ridge_penalty"),
                          ({"random_feature_type": "laplace"}, "random_feature_type"),
                          ({"covariance_momentum": 1.0}, "covariance_momentum"),
                          ({"input_projection_dim": 0}, "input_projection_dim")):
        with pytest.raises(ValueError, match=match):
            gp(**kwargs)
    with pytest.raises(ValueError, match=r"inputs \[batch, features\]"):
        gp()(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="stddev"):
        OrthogonalRandomFeatures(0.0)


# ----- tf.distribute: each replica's features are summed into the precision -----------------------
MIRRORED_PROGRAM = """
import numpy as np, tensorflow as tf
tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                           [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from uncertainty_baselines.layers import RandomFeatureGaussianProcess, SpectralNormDense
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
data = np.random.default_rng(0).normal(size=(24, 5)).astype("float32")  # 3 global batches of 8

def make(momentum):
    init = keras.initializers.RandomNormal(stddev=1.0, seed=3)
    return (SpectralNormDense(6, kernel_initializer=init, seed=2),
            RandomFeatureGaussianProcess(3, num_inducing=16, ridge_penalty=0.5,
                                         covariance_momentum=momentum, seed=1))

for momentum in (-1.0, 0.9):
    sn1, gp1 = make(momentum)  # one device, global batches of 8
    for x in np.split(data, 3):
        gp1(sn1(x, training=True), training=True)
    with strategy.scope():
        sn2, gp2 = make(momentum)
        gp2.build((None, 6))
    @tf.function
    def step(batch):
        strategy.run(lambda x: gp2(sn2(x, training=True), training=True), args=(batch,))
    for batch in strategy.experimental_distribute_dataset(
            tf.data.Dataset.from_tensor_slices(data).batch(8)):  # 4 rows per replica
        step(batch)
    copies = gp2.precision.value.values
    assert len(copies) == 2
    for copy in copies:
        np.testing.assert_allclose(copy.numpy(), gp1.precision.numpy(), rtol=1e-5, atol=1e-4)
    for one, two in ((sn1.u, sn2.u), (sn1.v, sn2.v)):
        for copy in two.value.values:
            np.testing.assert_allclose(copy.numpy(), one.numpy(), rtol=1e-5, atol=1e-6)
    gp2.reset_covariance()  # outside the replicated step: every copy back to the prior
    for copy in gp2.precision.value.values:
        np.testing.assert_array_equal(copy.numpy(), 0.5 * np.eye(16))
print("ok")
"""




# ----- JAX and PyTorch ----------------------------------------------------------------------------
BACKEND_PROGRAM = """
import numpy as np, keras
from keras import ops
from uncertainty_baselines.layers import (RandomFeatureGaussianProcess, SpectralNormConv2D,
                                          SpectralNormDense, mean_field_logits)
rng = np.random.default_rng(0)
to_np = ops.convert_to_numpy
# The normalised convolution operator's top singular value is the bound (explicit matrix).
conv = SpectralNormConv2D(3, 3, strides=2, padding="same", use_bias=False, norm_multiplier=1.5,
                          power_iterations=50,
                          kernel_initializer=keras.initializers.RandomNormal(stddev=2.0, seed=2))
for _ in range(4):
    conv(np.zeros((1, 6, 6, 2), "float32"), training=True)
operator = to_np(conv(np.eye(72, dtype="float32").reshape(72, 6, 6, 2))).reshape(72, -1)
sigma = np.linalg.svd(operator.astype("float64"), compute_uv=False)[0]
assert abs(sigma - 1.5) < 2e-3, sigma
# The GP's precision and predictive variance against NumPy from its own features.
gp = RandomFeatureGaussianProcess(3, num_inducing=16, ridge_penalty=0.5, seed=1)
x = rng.normal(size=(6, 4)).astype("float32")
gp(x, training=True)
phi = to_np(gp.random_features(x)).astype("float64")
precision = 0.5 * np.eye(16) + phi.T @ phi
np.testing.assert_allclose(to_np(gp.precision), precision, rtol=1e-5, atol=1e-5)
logits, variance = gp(x)
expected = 0.5 * np.einsum("bd,de,be->b", phi, np.linalg.inv(precision), phi)
np.testing.assert_allclose(to_np(variance), expected, rtol=1e-3, atol=1e-6)
np.testing.assert_allclose(to_np(mean_field_logits(logits, variance, np.pi / 8)),
                           to_np(logits) / np.sqrt(1 + np.pi / 8 * expected)[:, None], rtol=1e-4)
# The backend's compiled train step updates u, v and the precision through its state. The
# bound 100 leaves the kernel unnormalised, so the features the step sees are known before.
inputs = keras.Input((4,))
dense = SpectralNormDense(5, norm_multiplier=100.0, seed=4)
gp = RandomFeatureGaussianProcess(3, num_inducing=16, seed=3)
model = keras.Model(inputs, gp(dense(inputs))[0])
model.compile(optimizer=keras.optimizers.SGD(0.1),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
phi = to_np(gp.random_features(dense(x))).astype("float64")
u = to_np(dense.u)
model.train_on_batch(x, np.zeros(6, "int32"))
np.testing.assert_allclose(to_np(gp.precision), np.eye(16) + phi.T @ phi, rtol=1e-5, atol=1e-5)
assert not np.allclose(to_np(dense.u), u) and abs(np.linalg.norm(to_np(dense.u)) - 1) < 1e-5
print("ok", keras.backend.backend())
"""


PROGRAMS = {"tensorflow": MIRRORED_PROGRAM, "jax": BACKEND_PROGRAM, "torch": BACKEND_PROGRAM}


@pytest.fixture(scope="module")
def programs():
    """The subprocess programs, started together (each spends most of its time importing);
    a test waits for its own. Subprocesses: logical devices must be set before TensorFlow
    initialises, and one MirroredStrategy per process (tests/training/test_loop.py's)."""
    # The repo first on the path, so the subprocesses test this checkout.
    path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    started = {backend: subprocess.Popen(
        [sys.executable, "-c", program], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3",
                        "PYTHONPATH": path}) for backend, program in PROGRAMS.items()}
    yield started
    for process in started.values():
        if process.poll() is None:
            process.kill()
        process.communicate()


def output_of(process: subprocess.Popen) -> str:
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    return stdout


def test_precision_is_summed_over_replicas_like_one_device_on_the_global_batch(programs):
    assert output_of(programs["tensorflow"]).strip().endswith("ok")


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_sngp_layers_on_backend(backend, programs):
    pytest.importorskip(backend)
    assert f"ok {backend}" in output_of(programs[backend])


# ----- the mean-field logits layer and the epoch reset ----------------------------------------------
def test_mean_field_layer_gives_gp_logits_in_training_and_their_mean_field_otherwise():
    layer = MeanFieldGaussianProcess(3, mean_field_factor=2.0, num_inducing=D, ridge_penalty=0.5, seed=1)
    x = normal(17, 5, 4)
    np.testing.assert_allclose(to_np(layer(x, training=True)), features(layer, x) @ to_np(layer.kernel),
                               atol=1e-5)
    logits, variance = RandomFeatureGaussianProcess.call(layer, x)
    np.testing.assert_allclose(to_np(layer(x)), to_np(mean_field_logits(logits, variance, 2.0)), atol=1e-6)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(clone) is MeanFieldGaussianProcess and clone.get_config() == layer.get_config()
    with pytest.raises(ValueError, match="return_covariance must be False"):
        MeanFieldGaussianProcess(3, return_covariance=True)


def test_reset_covariances_resets_every_gp_layer_of_a_nested_model():
    inner_in = keras.Input((4,))
    inner = keras.Model(inner_in, gp(ridge_penalty=3.0)(inner_in)[0])
    outer_in = keras.Input((4,))
    model = keras.Model(outer_in, [inner(outer_in), gp(seed=2)(outer_in)[0]])
    model(normal(18, 5, 4), training=True)
    assert reset_covariances(model) == 2
    layers = [inner.layers[-1], model.layers[-1]]
    for layer, ridge in zip(layers, (3.0, 1.0)):
        np.testing.assert_array_equal(to_np(layer.precision), ridge * np.eye(D, dtype=np.float32))
