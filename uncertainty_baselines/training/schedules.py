"""Learning-rate schedule and optimizer of the image baselines.

Linear warm-up, then piecewise-constant decay at epoch boundaries given as fractions of
the training budget (the reference decays x0.2 at epochs 60/120/160 of 200, i.e. at
fractions 0.3/0.6/0.8), so a shorter run keeps the same shape. The base learning rate is
quoted per 128 examples and scales linearly with the global batch.
"""
from __future__ import annotations

import math
from typing import Sequence

import keras
from keras import ops

REFERENCE_BATCH = 128


def scaled_learning_rate(base_learning_rate: float, global_batch_size: int,
                         reference_batch: int = REFERENCE_BATCH) -> float:
    """The base LR (quoted per `reference_batch` examples) scaled to the global batch."""
    if base_learning_rate <= 0 or global_batch_size < 1:
        raise ValueError("need base_learning_rate > 0 and global_batch_size >= 1, got "
                         f"{base_learning_rate} and {global_batch_size}")
    return base_learning_rate * global_batch_size / reference_batch


def decay_boundaries(fractions: Sequence[float], train_epochs: int, steps_per_epoch: int) -> list[int]:
    """Steps at which the LR decays: round(fraction * train_epochs * steps_per_epoch).

    Fractions must lie in (0, 1] and increase strictly, so every decay happens once.
    """
    fractions = [float(f) for f in fractions]
    if any(not 0 < f <= 1 for f in fractions) or any(a >= b for a, b in zip(fractions, fractions[1:])):
        raise ValueError(f"decay fractions must increase strictly within (0, 1], got {fractions}")
    return [int(round(f * train_epochs * steps_per_epoch)) for f in fractions]


class WarmUpPiecewiseConstant(keras.optimizers.schedules.LearningRateSchedule):
    """lr(step) = peak * (step + 1) / warmup_steps during warm-up, then peak * ratio**k.

    k counts the boundaries <= step. The warm-up starts at peak / warmup_steps rather than
    0 so the very first step already updates the weights. Written with keras.ops, so it
    runs on every backend; `step` is the optimizer's 0-based iteration count.
    """

    def __init__(self, peak_learning_rate: float, warmup_steps: int,
                 boundaries: Sequence[int], decay_ratio: float):
        if peak_learning_rate <= 0 or warmup_steps < 0 or not 0 < decay_ratio <= 1:
            raise ValueError("need peak_learning_rate > 0, warmup_steps >= 0 and decay_ratio in (0, 1], got "
                             f"{peak_learning_rate}, {warmup_steps}, {decay_ratio}")
        self.peak_learning_rate = float(peak_learning_rate)
        self.warmup_steps = int(warmup_steps)
        self.boundaries = [int(b) for b in boundaries]
        self.decay_ratio = float(decay_ratio)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        decays = sum(ops.cast(step >= b, "float32") for b in self.boundaries) if self.boundaries else 0.0
        decayed = self.peak_learning_rate * ops.power(self.decay_ratio, decays)
        if self.warmup_steps == 0:
            return ops.cast(decayed, "float32")
        warm = self.peak_learning_rate * (step + 1.0) / self.warmup_steps
        return ops.where(step < self.warmup_steps, warm, decayed)

    def get_config(self) -> dict:
        return {"peak_learning_rate": self.peak_learning_rate, "warmup_steps": self.warmup_steps,
                "boundaries": self.boundaries, "decay_ratio": self.decay_ratio}


def image_schedule(*, base_learning_rate: float, global_batch_size: int, steps_per_epoch: int,
                   train_epochs: int, warmup_epochs: float, decay_fractions: Sequence[float],
                   decay_ratio: float) -> WarmUpPiecewiseConstant:
    """The reference image schedule for a run of `train_epochs` at `global_batch_size`."""
    return WarmUpPiecewiseConstant(
        peak_learning_rate=scaled_learning_rate(base_learning_rate, global_batch_size),
        warmup_steps=int(math.ceil(warmup_epochs * steps_per_epoch)),
        boundaries=decay_boundaries(decay_fractions, train_epochs, steps_per_epoch),
        decay_ratio=decay_ratio)


def nesterov_sgd(learning_rate, momentum: float = 0.9) -> keras.optimizers.SGD:
    """SGD with Nesterov momentum and no built-in weight decay: L2 is a loss term instead."""
    return keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum, nesterov=True)
