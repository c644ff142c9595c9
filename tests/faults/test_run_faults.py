"""Fault injection on a run directory: concurrent writers, kill -9 mid-checkpoint, a flipped
byte, a full disk, eval-only into the training folder, NaN evaluation outputs, a first
start that fails before writing anything, a truncated run record.
"""
import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from image_flag_values import image_flags
from uncertainty_baselines.runs import checkpoint, lifecycle, lock, output_dir, run_record
from uncertainty_baselines.training import distribution, experiment, flags, schedules

REPO = pathlib.Path(__file__).resolve().parents[2]


def python(code: str, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


def wait_for(predicate, timeout=60.0):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "timed out"
        time.sleep(0.02)


HOLD_RUN = """
import sys, time
from uncertainty_baselines.runs import lifecycle
run = lifecycle.start_run(sys.argv[1], {"lr": 0.1})
print("started", flush=True)
time.sleep(60)
"""


def test_second_writer_refused_naming_the_holder_and_lock_freed_by_kill(tmp_path):
    holder = python(HOLD_RUN, str(tmp_path))
    try:
        assert holder.stdout.readline().strip() == "started"
        with pytest.raises(lock.FolderLockedError, match=rf"in use by another process \(pid {holder.pid} on "):
            lifecycle.start_run(tmp_path, {"lr": 0.1})
        assert lock.is_locked(tmp_path)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert not lock.is_locked(tmp_path)  # kill -9 leaves no stale lock.
    run = lifecycle.start_run(tmp_path, {"lr": 0.1})
    assert run.resuming  # The same flags: the killed run is resumed, not refused.
    run.folder_lock.release()


SAVE_FOREVER = """
import sys, numpy as np
from uncertainty_baselines.runs import checkpoint
big = {"model": {"w": np.arange(4_000_000, dtype=np.float32)}}
for step in range(1, 1000):
    checkpoint.save(sys.argv[1], step, big, {"epoch": step})
    checkpoint.keep_last(sys.argv[1], 2)
    print(step, flush=True)
"""


def test_kill_during_checkpoint_writes_leaves_a_valid_latest(tmp_path):
    ckpts = tmp_path / checkpoint.SUBDIR
    writer = python(SAVE_FOREVER, str(ckpts))
    assert writer.stdout.readline().strip() == "1"
    wait_for(lambda: list(ckpts.glob(".tmp-ckpt-*")))  # Killed while a checkpoint is half written.
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    leftovers = list(ckpts.glob(".tmp-ckpt-*"))
    latest = checkpoint.restore_latest(ckpts)
    assert latest is not None and latest.parts["model"]["w"][-1] == 3_999_999
    # keep_last leaves another process's temporary folder alone (it could be a live writer's) ...
    checkpoint.keep_last(ckpts, 1)
    assert list(ckpts.glob(".tmp-ckpt-*")) == leftovers
    # ... and the next run start, holding the folder's lock, removes what dead writers left.
    (tmp_path / output_dir.FLAGS_FILE).write_text("{}")
    run = lifecycle.start_run(tmp_path, {})
    assert not list(ckpts.glob(".tmp-ckpt-*")) and run.resuming
    run.folder_lock.release()


RUN_AND_SAVE = """
import pathlib, sys, time, numpy as np
from uncertainty_baselines.runs import checkpoint, lifecycle
run = lifecycle.start_run(sys.argv[1], {"lr": 0.1})
for step in range(1, 41):
    checkpoint.save(sys.argv[1] + "/checkpoints", step, {"model": {"w": np.full(100_000, step)}}, {})
    checkpoint.keep_last(sys.argv[1] + "/checkpoints", 3)
print("saved 40", flush=True)
deadline = time.time() + 60
while not pathlib.Path(sys.argv[2]).exists() and time.time() < deadline:
    time.sleep(0.02)  # Hold the folder until the test has seen the other writer end.
"""


def test_two_writers_on_one_folder_one_refused_none_loses_saves(tmp_path):
    # Before the lock both trained, and housekeeping deleted the other's checkpoints in progress.
    run_dir, release = tmp_path / "run", tmp_path / "release"
    procs = [python(RUN_AND_SAVE, str(run_dir), str(release)) for _ in range(2)]
    wait_for(lambda: any(p.poll() is not None for p in procs), timeout=120)  # The refused one ends ...
    release.touch()  # ... while the holder still holds the folder; then it may go.
    results = [(p.pid, p.wait(timeout=120), p.stdout.read()) for p in procs]
    finished = [r for r in results if r[1] == 0]
    refused = [r for r in results if r[1] != 0]
    assert len(finished) == 1 and "saved 40" in finished[0][2]
    assert len(refused) == 1 and f"in use by another process (pid {finished[0][0]}" in refused[0][2]
    assert [p.name for p in checkpoint.list_checkpoints(run_dir / "checkpoints")] == [
        f"ckpt-{s:09d}" for s in (38, 39, 40)]


def test_flipped_byte_falls_back_to_the_previous_checkpoint(tmp_path):
    checkpoint.save(tmp_path, 1, {"model": {"w": np.zeros(10)}}, {"epoch": 1})
    latest = checkpoint.save(tmp_path, 2, {"model": {"w": np.ones(10)}}, {"epoch": 2})
    data = bytearray((latest / "model.npz").read_bytes())
    data[len(data) // 2] ^= 0x01
    (latest / "model.npz").write_bytes(bytes(data))
    restored = checkpoint.restore_latest(tmp_path)
    assert restored.step == 1 and (tmp_path / "ckpt-000000002.corrupt").is_dir()


FULL_DISK = """
import resource, signal, sys, numpy as np
from uncertainty_baselines.runs import checkpoint, run_record
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # Writes past the limit fail with EFBIG instead.
resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))  # Any file over 1 MB: "disk full".
try:
    checkpoint.save(sys.argv[1] + "/checkpoints", 2, {"model": {"w": np.zeros(1_000_000)}}, {"epoch": 2})
except OSError as e:
    print("checkpoint:", e.strerror)
try:
    run_record.write_json_atomic(sys.argv[1] + "/run.json", {"x": "y" * 2_000_000})
except OSError as e:
    print("record:", e.strerror)
"""


def test_full_disk_keeps_the_previous_checkpoint_and_record(tmp_path):
    checkpoint.save(tmp_path / "checkpoints", 1, {"model": {"w": np.ones(3)}}, {"epoch": 1})
    run_record.write_json_atomic(tmp_path / "run.json", {"x": 1})
    proc = python(FULL_DISK, str(tmp_path))
    out = proc.communicate(timeout=60)[0]
    assert "checkpoint: File too large" in out and "record: File too large" in out, out
    assert checkpoint.restore_latest(tmp_path / "checkpoints").step == 1  # The half-written one never became "latest".
    assert json.loads((tmp_path / "run.json").read_text()) == {"x": 1}


def test_eval_only_into_the_training_folder_is_refused(tmp_path):
    config = image_flags(eval_only=True, checkpoint_dir=str(tmp_path), output_dir=str(tmp_path / "."))
    with pytest.raises(flags.InvalidFlagsError, match="must not be the --checkpoint_dir that --eval_only evaluates"):
        flags.validate_image_flags(config)
    flags.validate_image_flags(image_flags(eval_only=True, checkpoint_dir=str(tmp_path),
                                            output_dir=str(tmp_path / "eval")))


class NanWhenEvaluating(keras.layers.Layer):
    """Finite in training, NaN in evaluation (what a huge --l2 did to batch-norm statistics)."""

    def call(self, x, training=False):
        return x if training else x * float("nan")


def test_nan_evaluation_outputs_stop_the_run_like_a_nan_loss(tmp_path):
    strategy = distribution.get_strategy("cpu")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 4)).astype(np.float32), rng.integers(0, 2, 16).astype(np.int32)
    train = tf.data.Dataset.from_tensor_slices({"features": x, "labels": y}).repeat().batch(8)
    test = tf.data.Dataset.from_tensor_slices({"features": x, "labels": y, "id": np.arange(16),
                                               "mask": np.ones(16, np.float32)}).batch(8)
    distribute = strategy.experimental_distribute_dataset
    data = experiment.ImageData(train=distribute(train), steps_per_epoch=2, num_train_examples=16,
                                num_classes=2, input_shape=(4,), test=distribute(test), ood={}, corrupted={})
    with strategy.scope():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2), NanWhenEvaluating()])
        optimizer = schedules.nesterov_sgd(0.1)
    with pytest.raises(experiment.NonFiniteError,
                       match=r"evaluation after epoch 1 \(step 2\): the model's outputs on the test set are "
                             r"not finite for 16 of 16 examples; stopping. The last good checkpoint is kept: none yet"):
        experiment.train_and_evaluate(model=model, optimizer=optimizer, strategy=strategy,
                                      data=data, output_dir=tmp_path, train_epochs=2, global_batch_size=8)
    assert checkpoint.list_checkpoints(tmp_path / "checkpoints") == []


def test_a_start_that_fails_on_missing_data_writes_nothing(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, str(REPO / "baselines" / "cifar" / "deterministic.py"),
                           "--dataset=fashion_mnist", f"--data_dir={tmp_path / 'no_data'}", f"--output_dir={out}",
                           "--depth=10", "--width=1", "--train_epochs=1"],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert proc.returncode != 0
    assert not out.exists()  # No flags.json pinning the folder to a run that never started.


def test_truncated_run_record_names_the_file(tmp_path):
    (tmp_path / "run.json").write_text('{"flags": {"seed": 1}, "metr')
    with pytest.raises(ValueError, match=rf"run record {tmp_path / 'run.json'} is not valid JSON"):
        run_record.read_run_record(tmp_path)
