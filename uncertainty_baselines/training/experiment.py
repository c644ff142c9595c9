"""The epoch loop every image baseline shares: data, resume, train, evaluate, checkpoint.

A baseline script builds its model and optimizer and calls `train_and_evaluate`; a method
that needs another training step passes its own `train_fn` (see `loop.make_train_fn`).

Resume guarantee: checkpoints are taken at epoch ends and hold every model and optimizer
variable. The training stream is a deterministic function of the seed (`ub.datasets`
shuffles epoch e with a seed derived from (seed, e) and augments each example with a seed
derived from (seed, e, id)), so a restart restores the latest checkpoint, skips the
batches already trained on and replays exactly the remaining ones: with TF op determinism
the final metrics equal those of an uninterrupted run. Work after the latest checkpoint
(at most `checkpoint_interval` epochs) is redone, and its metrics.jsonl lines replaced.
"""
from __future__ import annotations

import dataclasses
import math
import pathlib
import time
from typing import Any, Callable, Mapping

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from uncertainty_baselines import datasets as ub_datasets
from uncertainty_baselines.datasets import ood as ub_ood
from uncertainty_baselines.runs import checkpoint, progress, summaries
from uncertainty_baselines.training import evaluation, loop

class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss; the last good checkpoint is kept."""


@dataclasses.dataclass
class ImageData:
    """Distributed datasets of an image-classification run (evaluation sets padded and masked)."""
    train: Any  # Endless training stream of global batches.
    steps_per_epoch: int
    num_train_examples: int
    num_classes: int
    input_shape: tuple[int, ...]
    test: Any
    ood: dict[str, Any]
    corrupted: dict[tuple[str, int], Any]


def train_subset(name: str, num_examples: int | None, **kwargs: Any) -> ub_datasets.BaseDataset:
    """The training split, or only its first `num_examples` examples (smoke tests, demos).

    The subset is the dataset's own train/validation carve-out: the validation share is
    chosen so that exactly `num_examples` training examples remain.
    """
    dataset = ub_datasets.get(name, "train", **kwargs)
    if num_examples is None or num_examples == dataset.num_examples:
        return dataset
    total = dataset.num_examples
    if not 1 <= num_examples < total:
        raise ValueError(f"train_examples must be in [1, {total}] for {name}, got {num_examples}")
    # +0.5 keeps int(total * percent) == total - num_examples despite float rounding.
    subset = ub_datasets.get(name, "train", validation_percent=(total - num_examples + 0.5) / total, **kwargs)
    assert subset.num_examples == num_examples, (subset.num_examples, num_examples)
    return subset


def load_image_data(values: Any, strategy: tf.distribute.Strategy, *, with_corrupted: bool) -> ImageData:
    """Datasets named by the common image flags (see `training.flags`), loaded for `strategy`."""
    on_disk = {"data_dir": values.data_dir, "download_data": values.download_data}
    train = train_subset(values.dataset, values.train_examples, seed=values.seed, **on_disk)
    test = ub_datasets.get(values.dataset, "test", **on_disk)
    eval_batch = values.eval_batch_size or values.batch_size
    ood = {}
    if values.eval_on_ood:
        ood = {name: ub_ood.get_ood(values.dataset, name, data_dir=values.data_dir).load(
            batch_size=eval_batch, strategy=strategy) for name in values.ood_dataset}
    corrupted = {}
    if with_corrupted:
        for kind, severity in corruption_grid(values.corruption_types, values.severities):
            ds = ub_datasets.get(f"{values.dataset}_corrupted", "test", corruption_type=kind,
                                 severity=severity, **on_disk)
            corrupted[(kind, severity)] = ds.load(batch_size=eval_batch, strategy=strategy)
    return ImageData(
        train=train.load(batch_size=values.batch_size, strategy=strategy),
        steps_per_epoch=train.num_examples // values.batch_size,
        num_train_examples=train.num_examples, num_classes=test.num_classes,
        input_shape=tuple(test.output_shape),
        test=test.load(batch_size=eval_batch, strategy=strategy), ood=ood, corrupted=corrupted)


def corruption_grid(types: list[str], severities: list[str]) -> list[tuple[str, int]]:
    """(type, severity) pairs to evaluate; no types means all 15 benchmark corruptions."""
    from uncertainty_baselines.datasets import corruptions
    types = list(types) or list(corruptions.CORRUPTIONS)
    unknown = [t for t in types if t not in corruptions.CORRUPTIONS]
    if unknown:
        raise ValueError(f"unknown corruption types {unknown}; valid: {list(corruptions.CORRUPTIONS)}")
    return [(t, int(s)) for t in types for s in severities]


def checkpoint_parts(model: keras.Model, optimizer: keras.optimizers.Optimizer) -> dict[str, dict[str, np.ndarray]]:
    """Everything a resume needs: all model variables (incl. BN statistics, RNG state) and the optimizer's."""
    return {"model": checkpoint.variables_to_arrays(model.variables),
            "optimizer": checkpoint.variables_to_arrays(optimizer.variables)}


def restore(ckpt: checkpoint.Checkpoint, model: keras.Model, optimizer: keras.optimizers.Optimizer | None) -> None:
    """Assign a checkpoint's model (and optimizer, when given) variables."""
    checkpoint.assign_arrays(model.variables, ckpt.parts["model"], "model")
    if optimizer is not None:
        checkpoint.assign_arrays(optimizer.variables, ckpt.parts["optimizer"], "optimizer")


def train_and_evaluate(*, model: keras.Model, optimizer: keras.optimizers.Optimizer,
                       strategy: tf.distribute.Strategy, data: ImageData, output_dir: str | pathlib.Path,
                       train_epochs: int, global_batch_size: int, checkpoint_interval: int = 1,
                       keep_checkpoints: int = 3, corruptions_interval: int = 0, steps_per_loop: int = 50,
                       log_interval_s: float = 30.0,
                       train_fn: Callable[..., dict[str, float]] | None = None,
                       started_at: float | None = None) -> dict[str, Any]:
    """Train for `train_epochs` epochs (resuming from the latest checkpoint), evaluating each epoch.

    Every epoch ends with an evaluation on the clean test set and the OOD sets (the
    corrupted sets every `corruptions_interval` epochs and at the end) written to
    metrics.jsonl and TensorBoard, then a checkpoint every `checkpoint_interval` epochs and
    at the end. Returns the last evaluation record plus `earlier_wall_time_s`: the wall
    time the earlier processes of a resumed run spent up to their last checkpoint (each
    checkpoint keeps the total since `started_at`, a time.time(); default: this call), for
    the caller to add to its own. Raises NonFiniteLossError on a NaN or infinite loss,
    leaving the checkpoints as they were.
    """
    started_at = time.time() if started_at is None else started_at
    output_dir = pathlib.Path(output_dir)
    ckpt_dir = output_dir / checkpoint.SUBDIR
    if not optimizer.built:  # Its variables must exist before a checkpoint is restored into them.
        with strategy.scope():
            optimizer.build(model.trainable_variables)
    train_fn = train_fn or loop.make_train_fn(model, optimizer, strategy, global_batch_size)
    predict_fn = loop.make_predict_fn(model, strategy)

    start_epoch, step, earlier_wall_s = 0, 0, 0.0
    restored = checkpoint.restore_latest(ckpt_dir)
    if restored is not None:
        restore(restored, model, optimizer)
        start_epoch, step = restored.state["epoch"], restored.step
        earlier_wall_s = restored.state.get("wall_time_s", 0.0)
        logging.info("resumed from %s (epoch %d, step %d)", restored.path, start_epoch, step)
    summaries.truncate_metrics(output_dir, after_step=step)
    records = summaries.read_metrics(output_dir)
    record = records[-1] if records else {}

    writer = summaries.SummaryWriter(output_dir)
    iterator = iter(data.train)
    loop.skip_steps(iterator, step)
    total_steps = train_epochs * data.steps_per_epoch
    bar = progress.Progress(total_steps, initial=step, every_s=log_interval_s)
    for epoch in range(start_epoch, train_epochs):
        sums = {"ce_sum": 0.0, "correct": 0.0, "examples": 0.0}
        train_seconds, l2, done = 0.0, 0.0, 0
        while done < data.steps_per_epoch:
            n = min(steps_per_loop, data.steps_per_epoch - done)
            start = time.perf_counter()
            out = train_fn(iterator, n)
            train_seconds += time.perf_counter() - start
            if not (math.isfinite(out["ce_sum"]) and math.isfinite(out["l2"])):
                writer.close()
                raise NonFiniteLossError(
                    f"non-finite loss at epoch {epoch + 1}, steps {step + 1}-{step + n} "
                    f"(cross-entropy sum {out['ce_sum']}, l2 {out['l2']}); stopping. The last good "
                    f"checkpoint is kept: {_latest_name(ckpt_dir)}")
            for k in sums:
                sums[k] += out[k]
            l2, done, step = out["l2"], done + n, step + n
            bar.update(step, loss=out["ce_sum"] / out["examples"] + l2)
        last = epoch + 1 == train_epochs
        with_corrupted = bool(data.corrupted) and corruptions_interval > 0 and (
            (epoch + 1) % corruptions_interval == 0 or last)
        flat, _ = evaluation.evaluate(
            lambda ds: loop.predict(predict_fn, ds), num_classes=data.num_classes, test=data.test,
            ood=data.ood, corrupted=data.corrupted if with_corrupted else None)
        nll = sums["ce_sum"] / sums["examples"]
        train_metrics = {
            "train/loss": nll + l2, "train/negative_log_likelihood": nll, "train/l2": l2,
            "train/accuracy": sums["correct"] / sums["examples"],
            "train/ms_per_example": 1000.0 * train_seconds / sums["examples"],
            "train/learning_rate": float(np.asarray(optimizer.learning_rate)),
        }
        record = writer.write(step, {**train_metrics, **flat}, epoch=epoch + 1)
        logging.info("epoch %d/%d: %s", epoch + 1, train_epochs, format_metrics(record))
        if (epoch + 1) % checkpoint_interval == 0 or last:
            path = checkpoint.save(ckpt_dir, step, checkpoint_parts(model, optimizer), {
                "epoch": epoch + 1, "wall_time_s": earlier_wall_s + time.time() - started_at})
            checkpoint.keep_last(ckpt_dir, keep_checkpoints)
            logging.info("saved %s", path)
    writer.close()
    return {**record, "earlier_wall_time_s": earlier_wall_s}


def evaluate_checkpoint(*, model: keras.Model, strategy: tf.distribute.Strategy, data: ImageData,
                        run_dir: str | pathlib.Path) -> tuple[dict[str, float], int]:
    """Evaluate the latest verified checkpoint of run directory `run_dir` on every set of `data`.

    Returns the flat metrics and the checkpoint's step.
    """
    ckpt = checkpoint.restore_latest(pathlib.Path(run_dir) / checkpoint.SUBDIR)
    if ckpt is None:
        raise FileNotFoundError(f"no valid checkpoint under {pathlib.Path(run_dir) / checkpoint.SUBDIR}")
    restore(ckpt, model, None)
    predict_fn = loop.make_predict_fn(model, strategy)
    flat, _ = evaluation.evaluate(lambda ds: loop.predict(predict_fn, ds), num_classes=data.num_classes,
                                  test=data.test, ood=data.ood, corrupted=data.corrupted or None)
    return flat, ckpt.step


def results_table(metrics: Mapping[str, Any], num_params: int | None = None) -> str:
    """The final table: headline metrics (accuracy, NLL, ECE, corrupted, OOD, cost) if present."""
    rows = [(k, metrics.get(k)) for k in (
        "test/accuracy", "test/negative_log_likelihood", "test/ece", "test/brier",
        "test/accuracy_mean_corrupted", "test/negative_log_likelihood_mean_corrupted",
        "test/ece_mean_corrupted", "train/ms_per_example", "test/ms_per_example")]
    rows += sorted((k, v) for k, v in metrics.items() if k.startswith("ood/") and k.endswith(("_auroc", "_aupr_out")))
    rows = [(k, v) for k, v in rows if v is not None]
    if num_params is not None:
        rows.append(("num_params", num_params))
    width = max(len(k) for k, _ in rows)
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  ------"]
    lines += [f"{k:<{width}}  {v:.4f}" if isinstance(v, float) else f"{k:<{width}}  {v}" for k, v in rows]
    return "\n".join(lines)


def format_metrics(metrics: Mapping[str, Any], keys: tuple[str, ...] = (
        "train/loss", "train/accuracy", "test/accuracy", "test/negative_log_likelihood", "test/ece")) -> str:
    return ", ".join(f"{k}={metrics[k]:.4f}" for k in keys if metrics.get(k) is not None)


def _latest_name(ckpt_dir: pathlib.Path) -> str:
    found = checkpoint.list_checkpoints(ckpt_dir)
    return found[-1].name if found else "none yet"
