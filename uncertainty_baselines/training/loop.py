"""The custom training step and prediction helpers under tf.distribute (TF backend).

Not `model.fit`: the baselines need exact control of the loss (global-batch scaling, L2
as a loss term), of what is accumulated per step, and of when to stop, evaluate and
checkpoint. Steps run in a `tf.function` loop of several steps per call (like Keras'
steps_per_execution) so Python overhead stays off the critical path.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

import keras
import numpy as np
import tensorflow as tf

TrainFn = Callable[[Iterator, int], dict[str, float]]


def enable_determinism(seed: int) -> None:
    """Seed Python, NumPy, TF and Keras and make TF ops deterministic, for bitwise-repeatable runs."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def make_train_fn(model: keras.Model, optimizer: keras.optimizers.Optimizer,
                  strategy: tf.distribute.Strategy, global_batch_size: int) -> TrainFn:
    """A function running `num_steps` training steps from a distributed iterator.

    Each step minimises mean cross-entropy over the global batch plus the model's
    regularisation losses (L2 as a loss term): every replica divides its summed
    cross-entropy by the global batch and its L2 by the number of replicas, and the
    optimizer sums gradients across replicas, so the update does not depend on how the
    global batch is split. Returns host floats: summed cross-entropy `ce_sum`, the last
    step's `l2`, `correct` top-1 predictions and `examples` seen.
    """
    replicas = strategy.num_replicas_in_sync
    if not optimizer.built:  # Create slot variables now: not inside the traced loop.
        with strategy.scope():
            optimizer.build(model.trainable_variables)

    def step(batch):
        labels = tf.cast(batch["labels"], tf.int32)
        with tf.GradientTape() as tape:
            logits = model(batch["features"], training=True)
            ce = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
            ce_sum = tf.reduce_sum(ce)
            l2 = tf.add_n(model.losses) if model.losses else tf.constant(0.0)
            loss = ce_sum / global_batch_size + l2 / replicas
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32))
        return ce_sum, l2, correct, tf.cast(tf.shape(labels)[0], tf.float32)

    @tf.function
    def train_steps(iterator, num_steps):
        ce_sum = tf.constant(0.0)
        correct = tf.constant(0.0)
        examples = tf.constant(0.0)
        l2 = tf.constant(0.0)
        for _ in tf.range(num_steps):
            out = strategy.run(step, args=(next(iterator),))
            ce_sum += strategy.reduce(tf.distribute.ReduceOp.SUM, out[0], axis=None)
            l2 = strategy.reduce(tf.distribute.ReduceOp.MEAN, out[1], axis=None)
            correct += strategy.reduce(tf.distribute.ReduceOp.SUM, out[2], axis=None)
            examples += strategy.reduce(tf.distribute.ReduceOp.SUM, out[3], axis=None)
        return {"ce_sum": ce_sum, "l2": l2, "correct": correct, "examples": examples}

    def run(iterator: Iterator, num_steps: int) -> dict[str, float]:
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        out = train_steps(iterator, tf.constant(num_steps, tf.int32))
        return {k: float(v) for k, v in out.items()}

    return run


def make_predict_fn(model: keras.Model, strategy: tf.distribute.Strategy) -> Callable[[Any], dict[str, np.ndarray]]:
    """A function mapping one (distributed) evaluation batch to host arrays.

    The result holds `probs` (softmax of the logits, eval mode) and every other element
    key of the batch (`labels`, `id`, `mask`, ...) concatenated over replicas in order.
    """

    def replica_fn(batch):
        logits = model(batch["features"], training=False)
        out = {k: v for k, v in batch.items() if k != "features"}
        out["probs"] = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
        return out

    @tf.function
    def predict_batch(batch):
        return strategy.run(replica_fn, args=(batch,))

    def run(batch) -> dict[str, np.ndarray]:
        out = predict_batch(batch)
        return {k: np.concatenate([np.asarray(t) for t in strategy.experimental_local_results(v)])
                for k, v in out.items()}

    return run


def skip_steps(iterator: Iterator, num_steps: int) -> None:
    """Advance a (distributed) iterator by `num_steps` batches without training.

    Used on resume: the training stream is a deterministic function of the seed, so
    skipping the batches already trained on replays exactly the remaining ones.
    """
    if num_steps > 0:
        _skip(iterator, tf.constant(num_steps, tf.int64))


@tf.function
def _skip(iterator, num_steps):
    for _ in tf.range(num_steps):
        next(iterator)


def predict(predict_fn: Callable[[Any], dict[str, np.ndarray]], dataset: Iterable) -> dict[str, np.ndarray]:
    """Predictions over a whole evaluation dataset with padded rows (mask == 0) removed.

    Raises ValueError when the batches carry no `mask`: evaluation sets must be padded and
    masked, never truncated, so that every example is scored exactly once.
    """
    chunks: dict[str, list[np.ndarray]] = {}
    for batch in dataset:
        out = predict_fn(batch)
        if "mask" not in out:
            raise ValueError("evaluation batches need a 'mask' (load the split with mask_and_pad=True)")
        keep = out.pop("mask") > 0
        for k, v in out.items():
            chunks.setdefault(k, []).append(v[keep])
    if not chunks:
        raise ValueError("the evaluation dataset yielded no batches")
    return {k: np.concatenate(v) for k, v in chunks.items()}
