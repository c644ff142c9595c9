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

from uncertainty_baselines.training import distribution
from uncertainty_baselines.training import method as method_lib

TrainFn = Callable[[Iterator, int], dict[str, Any]]


def run_ops_one_at_a_time() -> bool:
    """Have TensorFlow run one op at a time (inter-op threads = 1), each on every intra-op
    thread, so a run stays bitwise repeatable when other processes share the cores.

    With ops running side by side (op determinism on), the gradients of a WRN-16-2 step on
    a fixed batch differed in their last bits between identical calls whenever the cores
    were busy (bench/determinism_bench.py), and even alone, with only the input pipeline's
    threads beside it, a 100-step CIFAR run ended at another accuracy each time; with one op
    at a time both repeat exactly, at the same step time within noise. Takes effect only
    before TF starts its runtime; returns whether inter-op threads are 1 now.
    """
    try:
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # The runtime has started (e.g. in a test process): too late to change.
        pass
    return tf.config.threading.get_inter_op_parallelism_threads() == 1


def enable_determinism(seed: int) -> None:
    """Seed Python, NumPy, TF and Keras and make TF ops deterministic, for bitwise-repeatable runs."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def make_train_fn(model: keras.Model, optimizer: keras.optimizers.Optimizer,
                  strategy: tf.distribute.Strategy, global_batch_size: int, *,
                  loss: method_lib.LossFn = method_lib.member_cross_entropy,
                  extra_losses: method_lib.ExtraLossFn = method_lib.regularization_losses,
                  format_batch: method_lib.BatchFormatter | None = None,
                  learning_rate_scales: method_lib.LearningRateScales | None = None,
                  seed: int = 0, steps_per_epoch: int = 1, num_train_examples: int = 1) -> TrainFn:
    """A function running `num_steps` training steps from a distributed iterator.

    Each step minimises the mean of `loss` (per example, over an optional member axis)
    over the global batch plus the named `extra_losses` terms (L2 as a loss term by
    default; they see a `method.TrainContext` of the step, `steps_per_epoch` and
    `num_train_examples`): every replica divides its summed loss by the global batch and its terms by
    the number of replicas, and the optimizer sums gradients across replicas, so the
    update does not depend on how the global batch is split. `format_batch` reshapes each
    replica's batch first, seeded statelessly from (`seed`, optimizer step, replica), so a
    resumed run formats exactly as an uninterrupted one; the loss is then the mean over the
    formatted batch (a batch repeated R times weighs as one). `learning_rate_scales` gives
    each trainable variable a multiplier on its gradient (for SGD, on its learning rate). Returns host floats: `loss_sum`,
    `correct` top-1 predictions (of the members' mean probability), `examples`, and
    `terms`, the last step's value of each extra term.
    """
    replicas = strategy.num_replicas_in_sync
    if not optimizer.built:  # Create slot variables now: not inside the traced loop.
        with strategy.scope():
            optimizer.build(model.trainable_variables)

    def step(batch):
        rows = tf.shape(batch["labels"])[0]
        if format_batch is not None:
            step_seed = tf.stack([tf.constant(seed, tf.int64), tf.cast(optimizer.iterations, tf.int64)])
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            batch = format_batch(batch, tf.random.experimental.stateless_fold_in(step_seed, replica))
        labels = tf.cast(batch["labels"], tf.int32)
        with tf.GradientTape() as tape:
            logits = model(batch["features"], training=True)
            loss_sum = tf.reduce_sum(loss(labels, logits))
            terms = dict(extra_losses(model, context(optimizer.iterations)))
            total = loss_sum / global_batch_size
            if format_batch is not None:  # The mean over the formatted batch (e.g. repeated examples).
                total *= tf.cast(rows, tf.float32) / tf.cast(tf.shape(labels)[0], tf.float32)
            if terms:
                total += tf.add_n(list(terms.values())) / replicas
            scaled = optimizer.scale_loss(total)  # Loss scaling (mixed_float16); else `total`.
        grads = tape.gradient(scaled, model.trainable_variables)
        if scales is not None:
            grads = [g if s == 1.0 else g * s for g, s in zip(grads, scales)]
        optimizer.apply(grads, model.trainable_variables)
        return loss_sum, terms, correct_predictions(labels, logits), tf.cast(tf.shape(labels)[0], tf.float32)

    @tf.function
    def train_steps(iterator, num_steps):
        loss_sum, correct, examples = tf.constant(0.0), tf.constant(0.0), tf.constant(0.0)
        terms = {name: tf.constant(0.0) for name in term_names}
        for _ in tf.range(num_steps):
            out = strategy.run(step, args=(next(iterator),))
            loss_sum += strategy.reduce(tf.distribute.ReduceOp.SUM, out[0], axis=None)
            terms = {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None) for k, v in out[1].items()}
            correct += strategy.reduce(tf.distribute.ReduceOp.SUM, out[2], axis=None)
            examples += strategy.reduce(tf.distribute.ReduceOp.SUM, out[3], axis=None)
        return {"loss_sum": loss_sum, "correct": correct, "examples": examples, "terms": terms}

    def context(step) -> method_lib.TrainContext:
        return method_lib.TrainContext(step, steps_per_epoch, num_train_examples)

    term_names = tuple(extra_losses(model, context(tf.constant(0, tf.int64))))  # The loop carries them.
    scales = None if learning_rate_scales is None else [float(x) for x in learning_rate_scales(model)]
    if scales is not None and len(scales) != len(model.trainable_variables):
        raise ValueError(f"learning_rate_scales gave {len(scales)} multipliers for "
                         f"{len(model.trainable_variables)} trainable variables")

    def run(iterator: Iterator, num_steps: int) -> dict[str, Any]:
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        out = train_steps(iterator, tf.constant(num_steps, tf.int32))
        return {"loss_sum": float(out["loss_sum"]), "correct": float(out["correct"]),
                "examples": float(out["examples"]), "terms": {k: float(v) for k, v in out["terms"].items()}}

    return run


def correct_predictions(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Number of correct top-1 predictions; with a member axis, of the members' mean
    probability (labels [B]) or of each member against its own label (labels [B, M])."""
    if logits.shape.rank == 3:
        probs = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
        if labels.shape.rank == 2:
            hits = tf.equal(tf.argmax(probs, -1, output_type=tf.int32), labels)
            return tf.reduce_sum(tf.reduce_mean(tf.cast(hits, tf.float32), axis=1))
        logits = tf.reduce_mean(probs, axis=1)
    hits = tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels)
    return tf.reduce_sum(tf.cast(hits, tf.float32))


def make_predict_fn(model: keras.Model, strategy: tf.distribute.Strategy,
                    predict: method_lib.PredictFn = method_lib.single_pass
                    ) -> Callable[[Any], dict[str, np.ndarray]]:
    """A function mapping one (distributed) evaluation batch to host arrays.

    The result holds `logits` ([B, K], or [B, M, K] when `predict` returns a member
    axis), `probs` (softmax, eval mode; the members' mean with a member axis), with a
    member axis also `member_probs` [B, M, K], and every other element key of the batch
    (`labels`, `id`, `mask`, ...), concatenated over replicas in order.
    """

    def replica_fn(batch):
        logits = tf.cast(predict(model, batch["features"]), tf.float32)
        out = {k: v for k, v in batch.items() if k != "features"}
        out["logits"] = logits
        out["probs"] = tf.nn.softmax(logits, axis=-1)
        if logits.shape.rank == 3:
            out["member_probs"] = out["probs"]
            out["probs"] = tf.reduce_mean(out["member_probs"], axis=1)
        return out

    @tf.function
    def predict_batch(batch):
        return distribution.gather_in_graph(strategy, strategy.run(replica_fn, args=(batch,)))

    def run(batch) -> dict[str, np.ndarray]:
        out = predict_batch(batch)
        return {k: distribution.host_values(strategy, v) for k, v in out.items()}

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
