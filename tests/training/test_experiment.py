"""The shared epoch loop on synthetic data: exact resume, NaN stop, corrupted-set schedule."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from uncertainty_baselines.runs import checkpoint, summaries
from uncertainty_baselines.training import distribution, experiment, loop, schedules

N_TRAIN, N_TEST, BATCH, CLASSES = 48, 21, 8, 3


def eval_set(seed, n=N_TEST):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    y = rng.integers(0, CLASSES, n).astype(np.int32)
    pad = -n % BATCH
    return tf.data.Dataset.from_tensor_slices({
        "features": np.concatenate([x, np.zeros((pad, 5), np.float32)]),
        "labels": np.concatenate([y, np.zeros(pad, np.int32)]),
        "id": np.concatenate([np.arange(n), -np.ones(pad, np.int64)]),
        "mask": np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])}).batch(BATCH)


def make_data(strategy, corrupted=False):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N_TRAIN, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 1).astype(np.int32)
    train = tf.data.Dataset.from_tensor_slices({"features": x, "labels": y}).shuffle(
        N_TRAIN, seed=3).repeat().batch(BATCH)
    dist = strategy.experimental_distribute_dataset
    return experiment.ImageData(
        train=dist(train), steps_per_epoch=N_TRAIN // BATCH, num_train_examples=N_TRAIN,
        num_classes=CLASSES, input_shape=(5,), test=dist(eval_set(1)), ood={},
        corrupted={(t, s): dist(eval_set(10 + s)) for t in ("noise", "blur") for s in (1, 2)} if corrupted else {})


def build(strategy):
    with strategy.scope():
        model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, kernel_regularizer=keras.regularizers.L2(1e-3)),
                                  keras.layers.BatchNormalization(), keras.layers.ReLU(), keras.layers.Dense(CLASSES)])
        opt = schedules.nesterov_sgd(schedules.WarmUpPiecewiseConstant(0.1, 3, [12], 0.2))
    return model, opt


def fit(out_dir, train_fn_wrapper=None, epochs=3, **kwargs):
    loop.enable_determinism(5)  # As the baselines do, before building data and model.
    strategy = distribution.get_strategy("cpu")
    data = make_data(strategy, corrupted=kwargs.pop("corrupted", False))
    model, opt = build(strategy)
    train_fn = None
    if train_fn_wrapper:
        train_fn = train_fn_wrapper(loop.make_train_fn(model, opt, strategy, BATCH))
    result = experiment.train_and_evaluate(
        model=model, optimizer=opt, strategy=strategy, data=data, output_dir=out_dir, train_epochs=epochs,
        global_batch_size=BATCH, steps_per_loop=4, log_interval_s=0, train_fn=train_fn, **kwargs)
    return result, model


def strip(record):
    return {k: v for k, v in record.items() if not k.endswith(("ms_per_example", "wall_time_s"))}


def interrupt_at(call_number):
    def wrapper(train_fn):
        calls = [0]

        def wrapped(iterator, n):
            calls[0] += 1
            if calls[0] == call_number:
                raise KeyboardInterrupt("simulated crash")
            return train_fn(iterator, n)
        return wrapped
    return wrapper


def test_resume_after_interruption_equals_uninterrupted(tmp_path):
    ref, ref_model = fit(tmp_path / "ref")
    # 6 steps per epoch in calls of 4 + 2: call 5 is the middle of epoch 3.
    with pytest.raises(KeyboardInterrupt):
        fit(tmp_path / "cut", interrupt_at(5))
    assert [r["epoch"] for r in summaries.read_metrics(tmp_path / "cut")] == [1, 2]
    got, got_model = fit(tmp_path / "cut")
    assert strip(got) == strip(ref)
    for a, b in zip(ref_model.variables, got_model.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert [strip(r) for r in summaries.read_metrics(tmp_path / "cut")] == \
        [strip(r) for r in summaries.read_metrics(tmp_path / "ref")]
    assert ref["test/num_examples"] == N_TEST


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    def nan_in_epoch_2(train_fn):
        calls = [0]

        def wrapped(iterator, n):
            calls[0] += 1
            out = train_fn(iterator, n)
            return {**out, "ce_sum": float("nan")} if calls[0] == 3 else out
        return wrapped

    with pytest.raises(experiment.NonFiniteLossError, match=r"epoch 2.*last good checkpoint is kept: ckpt-000000006"):
        fit(tmp_path, nan_in_epoch_2)
    assert [p.name for p in checkpoint.list_checkpoints(tmp_path / "checkpoints")] == ["ckpt-000000006"]
    state = checkpoint.restore_latest(tmp_path / "checkpoints").state
    assert state["epoch"] == 1 and state["wall_time_s"] > 0


def test_corrupted_sets_evaluated_every_interval_and_at_the_end(tmp_path):
    fit(tmp_path, epochs=3, corrupted=True, corruptions_interval=2, checkpoint_interval=2, keep_checkpoints=1)
    records = summaries.read_metrics(tmp_path)
    has = [("test/accuracy_mean_corrupted" in r) for r in records]
    assert has == [False, True, True]
    assert "test/ece_blur_2" in records[1] and "test/accuracy_mean_severity_1" in records[1]
    # Checkpoints at epoch 2 (interval) and 3 (end), only the last kept.
    assert [p.name for p in checkpoint.list_checkpoints(tmp_path / "checkpoints")] == ["ckpt-000000018"]


def test_train_subset_exact_size(monkeypatch):
    seen = []

    class Fake:
        def __init__(self, validation_percent=0.0):
            self.num_examples = 60000 - int(60000 * validation_percent)

    def fake_get(name, split, validation_percent=0.0, **kwargs):
        seen.append(validation_percent)
        return Fake(validation_percent)

    monkeypatch.setattr(experiment.ub_datasets, "get", fake_get)
    for n in (1, 7, 1000, 59999):
        assert experiment.train_subset("x", n).num_examples == n
    with pytest.raises(ValueError, match=r"train_examples must be in \[1, 60000\]"):
        experiment.train_subset("x", 60001)
