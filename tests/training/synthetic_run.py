"""Tiny synthetic data and models for tests of the shared run (5 features, 3 classes)."""
import keras
import numpy as np
import tensorflow as tf

from uncertainty_baselines.training import distribution, experiment, loop, schedules
from uncertainty_baselines.training.method import DETERMINISTIC_SEAMS

N_TRAIN, N_TEST, BATCH, CLASSES = 48, 21, 8, 3


def eval_set(seed, n=N_TEST, ood=False):
    """A padded-and-masked evaluation set; `ood`: an OOD set's OOD examples (inputs far from
    the training ones, label -1, `is_in_distribution` 0), as evaluation.evaluate takes them."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    y = rng.integers(0, CLASSES, n).astype(np.int32)
    pad = -n % BATCH
    columns = {
        "features": np.concatenate([x, np.zeros((pad, 5), np.float32)]),
        "labels": np.concatenate([y, np.zeros(pad, np.int32)]),
        "id": np.concatenate([np.arange(n), -np.ones(pad, np.int64)]),
        "mask": np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])}
    if ood:
        columns["features"][:n] = 4.0 * x
        columns["labels"][:n] = -1
        columns["is_in_distribution"] = np.zeros(n + pad, np.int32)
    return tf.data.Dataset.from_tensor_slices(columns).batch(BATCH)


def make_data(strategy, corrupted=False, ood=False):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N_TRAIN, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 1).astype(np.int32)
    train = tf.data.Dataset.from_tensor_slices({"features": x, "labels": y}).shuffle(
        N_TRAIN, seed=3).repeat().batch(BATCH)
    dist = strategy.experimental_distribute_dataset
    return experiment.ImageData(
        train=dist(train), steps_per_epoch=N_TRAIN // BATCH, num_train_examples=N_TRAIN,
        num_classes=CLASSES, input_shape=(5,), test=dist(eval_set(1)),
        ood={"far": dist(eval_set(2, ood=True))} if ood else {},
        corrupted={(t, s): dist(eval_set(10 + s)) for t in ("noise", "blur") for s in (1, 2)} if corrupted else {})


def dense_model(outputs=CLASSES):
    return keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, kernel_regularizer=keras.regularizers.L2(1e-3)),
                             keras.layers.BatchNormalization(), keras.layers.ReLU(), keras.layers.Dense(outputs)])


def optimizer():
    return schedules.nesterov_sgd(schedules.WarmUpPiecewiseConstant(0.1, 3, [12], 0.2))


def fit(out_dir, model_fn=dense_model, epochs=3, ood=False, corrupted=False, wrap_train_fn=None, **kwargs):
    """train_and_evaluate on the synthetic data, seeded as the baselines are; returns (record, model)."""
    loop.enable_determinism(5)
    strategy = distribution.get_strategy("cpu")
    data = make_data(strategy, corrupted=corrupted, ood=ood)
    with strategy.scope():
        model, opt = model_fn(), optimizer()
    train_fn = None
    if wrap_train_fn:
        method = kwargs.get("method", DETERMINISTIC_SEAMS)
        train_fn = wrap_train_fn(loop.make_train_fn(
            model, opt, strategy, BATCH, loss=method.loss, extra_losses=method.extra_losses,
            format_batch=method.format_batch, seed=kwargs.get("seed", 0),
            steps_per_epoch=data.steps_per_epoch, num_train_examples=data.num_train_examples))
    record = experiment.train_and_evaluate(
        model=model, optimizer=opt, strategy=strategy, data=data, output_dir=out_dir, train_epochs=epochs,
        global_batch_size=BATCH, steps_per_loop=4, log_interval_s=0, train_fn=train_fn, **kwargs)
    return record, model


def strip(record):
    """A record without wall-clock figures (they differ between identical runs)."""
    return {k: v for k, v in record.items() if not k.endswith(("ms_per_example", "wall_time_s"))}


def interrupt_at(call_number):
    """Wraps a train_fn so that its `call_number`-th call raises KeyboardInterrupt (a crash)."""
    def wrapper(train_fn):
        calls = [0]

        def wrapped(iterator, n):
            calls[0] += 1
            if calls[0] == call_number:
                raise KeyboardInterrupt("simulated crash")
            return train_fn(iterator, n)
        return wrapped
    return wrapper
