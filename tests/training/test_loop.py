"""Custom train step against a NumPy oracle; 2 mirrored replicas vs 1 device; masked prediction."""
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from uncertainty_baselines.training import distribution, loop, schedules


def linear_model(l2):
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(
        3, kernel_initializer=keras.initializers.RandomNormal(seed=1),
        kernel_regularizer=keras.regularizers.L2(l2))])


def data(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 4)).astype(np.float32), rng.integers(0, 3, n).astype(np.int32)


def batches(x, y, batch):
    return tf.data.Dataset.from_tensor_slices({"features": x, "labels": y}).batch(batch).repeat()


def test_one_step_matches_numpy_gradient():
    x, y = data()
    l2, lr = 0.01, 0.5
    strategy = distribution.get_strategy("cpu")
    with strategy.scope():
        model = linear_model(l2)
        opt = keras.optimizers.SGD(lr)
    w0, b0 = (np.asarray(v) for v in model.weights)
    out = loop.make_train_fn(model, opt, strategy, 8)(iter(strategy.experimental_distribute_dataset(batches(x, y, 8))), 1)
    # Oracle: softmax regression gradient of mean CE + l2 * |W|^2.
    logits = x @ w0 + b0
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    err = p - np.eye(3)[y]
    np.testing.assert_allclose(np.asarray(model.weights[0]), w0 - lr * (x.T @ err / 8 + 2 * l2 * w0), atol=1e-6)
    np.testing.assert_allclose(np.asarray(model.weights[1]), b0 - lr * err.mean(0), atol=1e-6)
    assert out["examples"] == 8
    assert out["loss_sum"] == pytest.approx(-np.log(p[np.arange(8), y]).sum(), rel=1e-5)
    assert out["terms"]["l2"] == pytest.approx(l2 * (w0 ** 2).sum(), rel=1e-5)
    assert out["correct"] == (logits.argmax(1) == y).sum()


def conv_bn_model():
    keras.utils.set_random_seed(3)
    return keras.Sequential([
        keras.Input((6, 6, 2)), keras.layers.Conv2D(4, 3, kernel_regularizer=keras.regularizers.L2(1e-3)),
        keras.layers.BatchNormalization(momentum=0.9), keras.layers.ReLU(),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])


def train_conv(strategy, steps=4):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 6, 6, 2)).astype(np.float32)
    y = rng.integers(0, 3, 32).astype(np.int32)
    with strategy.scope():
        model = conv_bn_model()
        assert distribution.synchronize_batch_norm(model) == 1
        opt = schedules.nesterov_sgd(0.1)
    it = iter(strategy.experimental_distribute_dataset(batches(x, y, 8)))
    train = loop.make_train_fn(model, opt, strategy, 8)
    out = [train(it, 2) for _ in range(steps // 2)]
    return [np.asarray(v) for v in model.variables], out


@pytest.fixture(scope="module")
def mirrored():
    # One MirroredStrategy per process: a second one reuses collective instance keys.
    if len(tf.config.list_logical_devices("CPU")) < 2:
        pytest.skip("needs 2 logical CPU devices (tests/conftest.py sets them up)")
    return distribution.get_strategy("mirrored", num_cores=2)


def test_mirrored_two_replicas_equal_one_device_same_global_batch(mirrored):
    one, out1 = train_conv(distribution.get_strategy("cpu"))
    two, out2 = train_conv(mirrored)
    for a, b in zip(one, two):
        np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-4)
    assert [o["examples"] for o in out2] == [16.0, 16.0]
    np.testing.assert_allclose([o["loss_sum"] for o in out1], [o["loss_sum"] for o in out2], rtol=1e-4)


def test_unsynchronized_bn_differs_on_two_replicas(mirrored, monkeypatch):
    # The oracle above is meaningful: without sync BN, per-replica statistics change the result.
    one, _ = train_conv(distribution.get_strategy("cpu"))
    monkeypatch.setattr(distribution, "synchronize_batch_norm", lambda model: 1)
    two, _ = train_conv(mirrored)
    assert max(np.abs(a - b).max() for a, b in zip(one, two)) > 1e-3


def test_get_strategy_errors():
    with pytest.raises(ValueError, match="unknown strategy 'gpu'"):
        distribution.get_strategy("gpu")
    with pytest.raises(ValueError, match="num_cores must be in"):
        distribution.get_strategy("mirrored", num_cores=99)


def test_predict_drops_padding_and_matches_model():
    strategy = distribution.get_strategy("cpu")
    model = linear_model(0.0)
    x, y = data(5)
    mask = np.array([1, 1, 1, 0, 1], np.float32)
    ds = tf.data.Dataset.from_tensor_slices(
        {"features": x, "labels": y, "id": np.arange(5), "mask": mask}).batch(2)
    out = loop.predict(loop.make_predict_fn(model, strategy), strategy.experimental_distribute_dataset(ds))
    assert sorted(out) == ["id", "labels", "logits", "probs"]
    np.testing.assert_array_equal(out["id"], [0, 1, 2, 4])
    np.testing.assert_allclose(out["probs"], tf.nn.softmax(model(x[[0, 1, 2, 4]])).numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="need a 'mask'"):
        loop.predict(loop.make_predict_fn(model, strategy),
                     tf.data.Dataset.from_tensor_slices({"features": x, "labels": y}).batch(2))


def test_split_cpu_is_a_no_op_when_enough_devices_and_explains_when_too_late():
    if len(tf.config.list_logical_devices("CPU")) != 2:
        pytest.skip("expects the 2 logical CPU devices of tests/conftest.py")
    distribution.split_cpu(2)  # Already split: nothing to do.
    with pytest.raises(RuntimeError, match="cannot split the CPU into 3 devices after TensorFlow initialised"):
        distribution.split_cpu(3)
    with pytest.raises(ValueError, match="num_devices must be >= 1"):
        distribution.split_cpu(0)


def test_ops_run_one_at_a_time_in_runs_and_in_this_test_process():
    # conftest.py set it before TensorFlow started; now the runtime has started it stays.
    assert tf.config.threading.get_inter_op_parallelism_threads() == 1
    assert loop.run_ops_one_at_a_time()
    fresh = subprocess.run(
        [sys.executable, "-c", "import tensorflow as tf; from uncertainty_baselines.training import loop; "
         "print(tf.config.threading.get_inter_op_parallelism_threads(), loop.run_ops_one_at_a_time(), "
         "tf.config.threading.get_inter_op_parallelism_threads())"],
        check=True, capture_output=True, text=True).stdout.split()
    assert fresh == ["0", "True", "1"]
