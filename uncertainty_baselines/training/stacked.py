"""Stacked members: M independent networks trained (and predicted) in ONE compiled step.

The model is a stack of M independent networks (e.g. ``ub.models.mlp`` with
``num_members=M``); member m trains on split ``member_split[m]`` with its own shuffling.
The loss is the SUM over members of each member's mean loss, so member m's gradient is
exactly the gradient of its own loss and Adam (elementwise) updates each member as if it
were trained alone; all members advance in one compiled step. Small-data training is
dominated by per-step overhead, so this is what makes ensembles and grids of small models fast.
Needs the TensorFlow backend (tf.GradientTape, tf.function); the models are backend-neutral.
"""
from __future__ import annotations

import math
from typing import Callable, Iterator, Sequence

import keras
import numpy as np
import tensorflow as tf
from absl import logging
from keras import ops

from uncertainty_baselines.layers import DenseVariational, MCDropout
from uncertainty_baselines.runs.progress import Progress

LOG_2PI = math.log(2 * math.pi)
# Per-member loss: (targets [M, B], outputs [M, B, K]) -> [M].
LossFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


def require_tensorflow_backend() -> None:
    """Training here uses tf.GradientTape; fail early, before a run starts, on another backend."""
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(f"stacked training needs the TensorFlow backend; got "
                           f"KERAS_BACKEND={keras.backend.backend()!r}.")


def gaussian_nll_loss(y: tf.Tensor, outputs: tf.Tensor) -> tf.Tensor:
    """Mean Gaussian NLL per member from a GaussianHead output [M, B, 2]."""
    mean, scale = outputs[..., 0], outputs[..., 1]
    nll = 0.5 * LOG_2PI + ops.log(scale) + 0.5 * ops.square((y - mean) / scale)
    return ops.mean(nll, axis=-1)


def squared_error_loss(y: tf.Tensor, outputs: tf.Tensor) -> tf.Tensor:
    """Mean squared error per member from point predictions [M, B, 1]."""
    return ops.mean(ops.square(y - outputs[..., 0]), axis=-1)


def kl_per_member(model: keras.Model) -> tf.Tensor:
    """Sum of the variational layers' KL terms, one value per member."""
    return sum(layer.kl() for layer in model.layers if isinstance(layer, DenseVariational))


def l2_per_member(model: keras.Model) -> tf.Tensor:
    """Sum of squared kernel weights (not biases) of each member, [M]."""
    return sum(ops.sum(ops.square(w), axis=(1, 2)) for w in model.trainable_weights
               if w.path.endswith("kernel"))


def _jit_compile(model: keras.Model) -> bool:
    """XLA on CPU generates random numbers ~100x slower than TF's kernels, so models that
    draw noise (variational weights) run as plain tf.functions; MC dropout models too, as
    the UCI results were recorded (its TensorFlow masks are hashed, which XLA does fast)."""
    return not any(isinstance(layer, (MCDropout, DenseVariational)) for layer in model.layers)


def train(model: keras.Model, x: np.ndarray, y: np.ndarray, member_split: Sequence[int], *,
          epochs: int, batch_size: int, learning_rate: float, loss_fn: LossFn, seed: int,
          penalty_fn: Callable[[keras.Model, int], tf.Tensor] | None = None,
          adversarial_eps: np.ndarray | None = None,
          on_epoch: Callable[[int, np.ndarray], None] | None = None) -> np.ndarray:
    """Trains the stacked ``model`` with Adam; returns the last epoch's mean loss per member.

    Args:
      x, y: training data of every split, [S, N, D] and [S, N].
      member_split: for each of the M members, the split it trains on.
      epochs, batch_size: each epoch every member sees floor(N / batch_size) batches of its
        own random permutation (the remainder differs each epoch, so no row is left out).
      loss_fn: per-member data loss; ``penalty_fn(model, N)`` ([M] or scalar, N the
        training rows per split) is added per step (KL / N for VI, weight decay for MC
        dropout).
      adversarial_eps: [M, D] per-member step of the fast gradient sign method; when given
        the loss is loss(x) + loss(x + eps * sign(d loss / d x)) (Lakshminarayanan et al.).
      on_epoch: called with (epoch, mean loss per member) after every epoch.
    """
    num_members = len(member_split)
    n = x.shape[1]
    if batch_size > n:
        raise ValueError(f"batch_size {batch_size} exceeds the {n} training rows.")
    steps = n // batch_size
    member_split = tf.constant(member_split, tf.int32)
    x_members = tf.gather(tf.constant(x, tf.float32), member_split)
    y_members = tf.gather(tf.constant(y, tf.float32), member_split)
    eps = None if adversarial_eps is None else tf.constant(adversarial_eps[:, None, :], tf.float32)
    optimizer = keras.optimizers.Adam(learning_rate)
    variables = model.trainable_variables
    optimizer.build(variables)

    def member_loss(xb, yb):
        per_member = loss_fn(yb, model(xb, training=True))
        return per_member if penalty_fn is None else per_member + penalty_fn(model, n)

    def adversarial_member_loss(xb, yb):
        with tf.GradientTape() as input_tape:
            input_tape.watch(xb)
            clean = member_loss(xb, yb)
            clean_total = tf.reduce_sum(clean)
        x_adv = xb + eps * tf.sign(input_tape.gradient(clean_total, xb))
        return clean + loss_fn(yb, model(x_adv, training=True))

    objective = member_loss if eps is None else adversarial_member_loss

    def step(xb, yb):
        with tf.GradientTape() as tape:
            per_member = objective(xb, yb)
            total = tf.reduce_sum(per_member)
        grads = tape.gradient(total, variables)
        optimizer.apply(grads, variables)
        return per_member

    @tf.function(jit_compile=_jit_compile(model))
    def run_epoch(order):  # order: [steps, M, B] row indices
        losses = tf.TensorArray(tf.float32, size=steps)
        for s in tf.range(steps):
            xb = tf.gather(x_members, order[s], batch_dims=1)
            yb = tf.gather(y_members, order[s], batch_dims=1)
            losses = losses.write(s, step(xb, yb))
        return tf.reduce_mean(losses.stack(), axis=0)

    rng = np.random.default_rng(seed)
    losses = np.zeros(num_members)
    progress = Progress(epochs, unit="epoch")
    for epoch in range(epochs):
        order = np.argsort(rng.random((num_members, n)), axis=1)[:, :steps * batch_size]
        order = order.reshape(num_members, steps, batch_size).transpose(1, 0, 2)
        losses = run_epoch(tf.constant(order, tf.int32)).numpy()
        if not np.all(np.isfinite(losses)):
            raise FloatingPointError(f"non-finite training loss at epoch {epoch}: {losses}")
        progress.update(epoch + 1, mean_member_loss=float(losses.mean()))
        if on_epoch is not None:
            on_epoch(epoch, losses)
    return losses


def train_and_score_checkpoints(model: keras.Model, x: np.ndarray, y: np.ndarray,
                                member_split: Sequence[int], candidates: Sequence[int],
                                score_fn: Callable[[], np.ndarray],
                                **train_kwargs) -> dict[int, np.ndarray]:
    """Trains for max(candidates) epochs and returns {epochs: score_fn()} after each
    candidate epoch count (e.g. validation log-likelihood per member): one training run
    scores every candidate, as early stopping on the validation carve-out does."""
    scores = {}

    def on_epoch(epoch: int, losses: np.ndarray) -> None:
        del losses
        if epoch + 1 in candidates:
            scores[epoch + 1] = score_fn()

    try:
        train(model, x, y, member_split, epochs=max(candidates), on_epoch=on_epoch,
              **train_kwargs)
    except FloatingPointError as error:  # keep the candidates scored before it diverged
        if not scores:
            raise
        logging.warning("%s; keeping the candidates scored before: %s", error, sorted(scores))
    return scores


def predict(model: keras.Model, x: np.ndarray, member_split: Sequence[int],
            num_samples: int = 1, rows_independent: bool = False,
            max_rows: int = 1 << 18) -> Iterator[np.ndarray]:
    """Yields chunks [c, M, N, K] of ``num_samples`` stochastic forward passes in all.

    Each member sees its split's rows of ``x`` [S, N, D]. With ``rows_independent`` (MC
    dropout: every row draws its own mask) c copies of the rows go through one call;
    otherwise (variational weights: one draw per call) each call is one sample.
    """
    x_members = tf.gather(tf.constant(x, tf.float32), tf.constant(member_split, tf.int32))
    num_members, n = x_members.shape[:2]
    copies = max(1, min(num_samples, max_rows // max(n * num_members, 1))) if rows_independent else 1
    forward = tf.function(lambda xs: model(xs, training=False), jit_compile=_jit_compile(model))
    tiled = tf.tile(x_members, [1, copies, 1])
    done = 0
    while done < num_samples:
        out = forward(tiled).numpy()
        out = out.reshape(num_members, copies, n, -1).transpose(1, 0, 2, 3)
        out = out[:num_samples - done]
        done += len(out)
        yield out
