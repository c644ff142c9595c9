"""The seams a method plugs into the shared image-classification run.

A baseline is the deterministic run with a few small functions replaced, each with a
default that gives the deterministic baseline (the shape of torch-uncertainty's model
wrapper with a member axis, batch formatter and loss, plus extra loss terms, an epoch
hook and OOD score kinds). Logits have shape [B, K], or [B, M, K] with a member axis (M
heads, M stochastic passes, M fast-weight members); labels [B], or [B, M] when each
member has its own (MIMO). All functions run inside the compiled TensorFlow step. Seam
implementations that several baselines share (sampled passes, MIMO batches, the annealed
KL term of the variational methods) live here too.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

import keras
import tensorflow as tf

Batch = dict[str, tf.Tensor]
# (values, data) -> {"name": registry name, "kwargs": JSON kwargs} for ub.models.get.
ModelSpecFn = Callable[[Any, Any], dict[str, Any]]
# (batch, seed) -> batch: seed is a stateless [2] int32 seed from (run seed, step, replica).
BatchFormatter = Callable[[Batch, tf.Tensor], Batch]
# (labels, logits) -> per-example loss [B] (summed over the batch, divided by the global batch).
LossFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


@dataclasses.dataclass(frozen=True)
class TrainContext:
    """What an extra loss term may depend on: `step` (a tensor, updates done so far) and the
    run's `steps_per_epoch` and `num_train_examples` (for KL annealing and KL / N)."""
    step: tf.Tensor
    steps_per_epoch: int
    num_train_examples: int

    @property
    def epoch(self) -> tf.Tensor:
        """Epochs done so far, fractional (a float32 tensor)."""
        return tf.cast(self.step, tf.float32) / float(self.steps_per_epoch)


# (model, context) -> named scalar loss terms added to the loss and reported as train/<name>.
ExtraLossFn = Callable[[keras.Model, TrainContext], Mapping[str, tf.Tensor]]
# (model, features) -> logits [B, K] or [B, M, K] in evaluation.
PredictFn = Callable[[keras.Model, tf.Tensor], tf.Tensor]
# (model, epoch) -> None, before the epoch's first step (epoch counts from 0).
EpochHook = Callable[[keras.Model, int], None]
# (model) -> one learning-rate multiplier per trainable variable, applied to its gradient.
LearningRateScales = Callable[[keras.Model], Sequence[float]]


def member_cross_entropy(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Softmax cross-entropy per example, averaged over the member axis when there is one."""
    labels = tf.cast(labels, tf.int32)
    if logits.shape.rank == 3 and labels.shape.rank == 1:
        labels = tf.repeat(labels[:, None], tf.shape(logits)[1], axis=1)
    ce = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    return tf.reduce_mean(ce, axis=1) if logits.shape.rank == 3 else ce


def summed_member_cross_entropy(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Softmax cross-entropy per example summed over the member axis (MIMO's loss: each
    head's gradient as large as a single model's)."""
    return member_cross_entropy(labels, logits) * tf.cast(tf.shape(logits)[1], tf.float32)


def regularization_losses(model: keras.Model, context: TrainContext | None = None) -> dict[str, tf.Tensor]:
    """The model's own penalty terms (the kernel regularisers' L2) as one term `l2`."""
    return {"l2": tf.add_n(model.losses) if model.losses else tf.constant(0.0)}


def kl_weight(context: TrainContext, annealing_epochs: float) -> tf.Tensor:
    """The KL term's weight at this step, min(1, (step + 1) / (steps_per_epoch x
    `annealing_epochs`)): the reference's linear annealing, in which the step being taken
    counts; 1 from the first step when `annealing_epochs` is 0."""
    if annealing_epochs < 0:
        raise ValueError(f"annealing_epochs must be >= 0, got {annealing_epochs}")
    if annealing_epochs == 0:
        return tf.constant(1.0)
    steps = tf.cast(context.step + 1, tf.float32)
    return tf.minimum(1.0, steps / float(context.steps_per_epoch * annealing_epochs))


def annealed_kl(kl_fn: Callable[[keras.Model], tf.Tensor], annealing_epochs: float) -> ExtraLossFn:
    """Extra losses of a variational method: the model's L2 terms `l2` and the ELBO's KL term
    `kl` = `kl_weight` x kl_fn(model) / number of training examples (the annealed value, as
    it enters the loss, is what train/kl reports)."""
    def extra_losses(model: keras.Model, context: TrainContext) -> dict[str, tf.Tensor]:
        kl = tf.cast(kl_fn(model), tf.float32) / float(context.num_train_examples)
        return {**regularization_losses(model), "kl": kl_weight(context, annealing_epochs) * kl}
    return extra_losses


def single_pass(model: keras.Model, features: tf.Tensor) -> tf.Tensor:
    """One deterministic forward pass in evaluation mode."""
    return model(features, training=False)


def stochastic_passes(num_passes: int) -> PredictFn:
    """Predict with `num_passes` stochastic forward passes as members (MC dropout's samples),
    run as one pass over the batch tiled `num_passes` times (one large batch is faster than
    N small ones; each copy draws its own dropout masks, and eval-mode layers do not mix rows)."""
    def predict(model: keras.Model, features: tf.Tensor) -> tf.Tensor:
        tiled = tf.tile(features, [num_passes] + [1] * (features.shape.rank - 1))
        logits = model(tiled, training=False)  # [N * B, K], pass-major.
        return tf.transpose(tf.reshape(logits, [num_passes, -1, logits.shape[-1]]), [1, 0, 2])
    return predict


def repeated_per_member_shuffles(repetitions: int, members: int) -> BatchFormatter:
    """MIMO's training batch: the batch repeated `repetitions` times, shuffled once per
    member, the members' images stacked on channels: features [B*R, H, W, C*M], labels [B*R, M]."""
    def format_batch(batch: Batch, seed: tf.Tensor) -> Batch:
        images = tf.tile(batch["features"], [repetitions, 1, 1, 1])
        labels = tf.tile(batch["labels"], [repetitions])
        orders = [tf.random.experimental.stateless_shuffle(
            tf.range(tf.shape(labels)[0]), tf.random.experimental.stateless_fold_in(seed, m)) for m in range(members)]
        return {"features": tf.concat([tf.gather(images, order) for order in orders], axis=-1),
                "labels": tf.stack([tf.gather(labels, order) for order in orders], axis=1)}
    return format_batch


def same_input_to_every_member(members: int) -> PredictFn:
    """MIMO's prediction: the image fed to all `members` channel-stacked inputs."""
    def predict(model: keras.Model, features: tf.Tensor) -> tf.Tensor:
        return model(tf.tile(features, [1, 1, 1, members]), training=False)
    return predict


# The OOD scores that suit one softmax model (no member axis): 1 - max probability, the
# predictive entropy and Dempster-Shafer on the logits.
SOFTMAX_OOD_SCORES = ("msp", "entropy", "dempster_shafer")


def no_method_flag_errors(values: Any) -> list[str]:
    return []


@dataclasses.dataclass(frozen=True)
class Method:
    """What one baseline changes; every field but `name` has a default.

    `model_spec` names the registry model and its JSON kwargs (needed to run a baseline,
    see `experiment.run_baseline`; recorded so `ub.models.load` can rebuild it).
    `method_flags` names the script's own flags: they are validated by `validate`
    (returning messages, empty when fine), recorded in flags.json and run.json, and a
    restart must repeat them to resume. `batch_repetitions` > 1 says that `format_batch`
    repeats each example that many times and that --batch_size counts the repeated rows (as
    the reference MIMO): a step then reads batch_size / batch_repetitions distinct examples,
    an epoch has that many more steps, and the learning rate scales with the distinct ones.
    """
    name: str
    model_spec: ModelSpecFn | None = None
    method_flags: Sequence[str] = ()
    validate: Callable[[Any], list[str]] = no_method_flag_errors
    format_batch: BatchFormatter | None = None
    loss: LossFn = member_cross_entropy
    extra_losses: ExtraLossFn = regularization_losses
    predict: PredictFn = single_pass
    on_epoch_start: EpochHook | None = None
    ood_scores: Sequence[str] = ("msp",)
    learning_rate_scales: LearningRateScales | None = None
    batch_repetitions: int = 1


DETERMINISTIC_SEAMS = Method("deterministic")  # Every seam at its default.
