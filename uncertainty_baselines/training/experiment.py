"""The run every baseline shares: data, model, resume, train, evaluate, checkpoint, record.

A baseline script defines its `method.Method` (model spec and the seams it changes) and
calls `run_baseline(config, method, task)`, where the `Task` is what its family of
datasets brings: flag checks, data loader, optimizer (`IMAGE_TASK`, the default, and
`training.text.TEXT`); `train_and_evaluate` and `evaluate_runs` are the same machinery for
use from a notebook.

Resume guarantee: checkpoints are taken at epoch ends and hold every model and optimizer
variable. The training stream is a deterministic function of the seed (`ub.datasets`
shuffles epoch e with a seed derived from (seed, e) and augments each example with a seed
derived from (seed, e, id); a method's batch formatter is seeded from (seed, step)), so a
restart restores the latest checkpoint, skips the batches already trained on and replays
exactly the remaining ones: with TF op determinism the final metrics equal those of an
uninterrupted run. Work after the latest checkpoint (at most `checkpoint_interval`
epochs) is redone, and its metrics.jsonl lines replaced.
"""
from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import sys
import time
from typing import Any, Callable, Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf
from absl import app, logging

from uncertainty_baselines import datasets as ub_datasets
from uncertainty_baselines import models as ub_models
from uncertainty_baselines.datasets import ood as ub_ood
from uncertainty_baselines.runs import (bundle, checkpoint, curves, lifecycle, lock, predictions, progress,
                                        run_record, summaries)
from uncertainty_baselines.runs import output_dir as output_dir_lib
from uncertainty_baselines.training import distribution, evaluation, loop, precision, schedules
from uncertainty_baselines.training import flags as ub_flags
from uncertainty_baselines.training import method as method_lib

NonFiniteError = evaluation.NonFiniteError


class MemberError(ValueError):
    """A run directory cannot be an ensemble member (unreadable, another dataset or model,
    missing or corrupt checkpoint); the message names the directory."""


@dataclasses.dataclass
class ImageData:
    """Distributed datasets of a run (evaluation sets padded and masked); text runs use it
    too, with `input_shape` (sequence length,) and no corrupted sets."""
    train: Any  # Endless training stream of global batches.
    steps_per_epoch: int
    num_train_examples: int
    num_classes: int
    input_shape: tuple[int, ...]
    test: Any
    ood: dict[str, Any]  # The OOD examples of each OOD set (scored after the test set: evaluation.evaluate).
    corrupted: dict[tuple[str, int], Any]
    shifted: dict[str, Any] = dataclasses.field(default_factory=dict)  # Other test sets of the same classes.
    # Metrics computed from an evaluation's flat metrics and added to them (ImageNet-C's mCE).
    derived_metrics: Callable[[Mapping[str, float]], Mapping[str, float]] | None = None

    def with_derived(self, flat: dict[str, float]) -> dict[str, float]:
        """`flat` plus its `derived_metrics`."""
        return {**flat, **self.derived_metrics(flat)} if self.derived_metrics else flat


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


def load_image_data(values: Any, strategy: tf.distribute.Strategy, *, with_corrupted: bool,
                    train_batch_size: int | None = None, dataset_kwargs: Mapping[str, Any] | None = None
                    ) -> ImageData:
    """Datasets named by the common image flags (see `training.flags`), loaded for `strategy`.

    Training batches hold `train_batch_size` examples (default `values.batch_size`; fewer
    when a method repeats each example, see `Method.batch_repetitions`); `dataset_kwargs`
    go to every in-distribution set (train, test, corrupted; e.g. ImageNet's image_size)."""
    train_batch_size = train_batch_size or values.batch_size
    on_disk = {"data_dir": values.data_dir, "download_data": values.download_data, **(dataset_kwargs or {})}
    augmentation = {} if values.crop_padding is None else {"crop_padding": values.crop_padding}
    train = train_subset(values.dataset, values.train_examples, seed=values.seed, **on_disk, **augmentation)
    test = ub_datasets.get(values.dataset, "test", **on_disk)
    eval_batch = values.eval_batch_size or values.batch_size
    ood = {}
    if values.eval_on_ood:
        ood = {name: ub_ood.get_ood(values.dataset, name, data_dir=values.data_dir, include_in_distribution=False
                                    ).load(batch_size=eval_batch, strategy=strategy) for name in values.ood_dataset}
    corrupted = {}
    if with_corrupted:
        for kind, severity in corruption_grid(values.corruption_types, values.severities):
            ds = ub_datasets.get(f"{values.dataset}_corrupted", "test", corruption_type=kind,
                                 severity=severity, **on_disk)
            corrupted[(kind, severity)] = ds.load(batch_size=eval_batch, strategy=strategy)
    return ImageData(
        train=train.load(batch_size=train_batch_size, strategy=strategy),
        steps_per_epoch=train.num_examples // train_batch_size,
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
                       train_epochs: int, global_batch_size: int,
                       method: method_lib.Method = method_lib.DETERMINISTIC_SEAMS,
                       seed: int = 0, checkpoint_interval: int = 1, keep_checkpoints: int = 3,
                       corruptions_interval: int = 0, steps_per_loop: int = 50,
                       log_interval_s: float = 30.0, train_fn: loop.TrainFn | None = None,
                       save_predictions: bool = False,
                       started_at: float | None = None, chief: bool = True) -> dict[str, Any]:
    """Train for `train_epochs` epochs (resuming from the latest checkpoint), evaluating each epoch.

    `method` supplies the seams (loss, extra loss terms, batch formatter seeded from
    `seed`, member-axis prediction, epoch hook, OOD score kinds); default: the
    deterministic method. `train_fn` replaces the whole step (tests). Every epoch ends with
    an evaluation on the clean test set and the OOD sets (the corrupted sets every
    `corruptions_interval` epochs and at the end) written to metrics.jsonl and
    TensorBoard, then a checkpoint every `checkpoint_interval` epochs and at the end. With
    `save_predictions` the final evaluation's per-example predictions of every set go to
    `<output_dir>/predictions/` (runs/predictions.py) before the last checkpoint.
    Returns the last evaluation record plus `earlier_wall_time_s`: the wall time the earlier
    processes of a resumed run spent up to their last checkpoint (each checkpoint keeps the
    total since `started_at`, a time.time(); default: this call). Raises NonFiniteError on a
    NaN or infinite loss or evaluation output, leaving the checkpoints as they were. A
    non-`chief` worker of a multi-worker run computes everything alike but writes nothing:
    it resumes from the chief's checkpoints (`output_dir` on a shared file system).
    """
    started_at = time.time() if started_at is None else started_at
    output_dir = pathlib.Path(output_dir)
    ckpt_dir = output_dir / checkpoint.SUBDIR
    if not optimizer.built:  # Its variables must exist before a checkpoint is restored into them.
        with strategy.scope():
            optimizer.build(model.trainable_variables)
    train_fn = train_fn or loop.make_train_fn(
        model, optimizer, strategy, global_batch_size, loss=method.loss,
        extra_losses=method.extra_losses, format_batch=method.format_batch,
        learning_rate_scales=method.learning_rate_scales, seed=seed,
        steps_per_epoch=data.steps_per_epoch, num_train_examples=data.num_train_examples)
    predict_fn = loop.make_predict_fn(model, strategy, method.predict)

    start_epoch, step, earlier_wall_s = 0, 0, 0.0
    restored = checkpoint.restore_latest(ckpt_dir)
    if restored is not None:
        restore(restored, model, optimizer)
        start_epoch, step = restored.state["epoch"], restored.step
        earlier_wall_s = restored.state.get("wall_time_s", 0.0)
        logging.info("resumed from %s (epoch %d, step %d)", restored.path, start_epoch, step)
    if chief:
        summaries.truncate_metrics(output_dir, after_step=step)
    records = summaries.read_metrics(output_dir)
    record = records[-1] if records else {}

    writer = summaries.SummaryWriter(output_dir, files=chief)
    iterator = iter(data.train)
    loop.skip_steps(iterator, step)
    bar = progress.Progress(train_epochs * data.steps_per_epoch, initial=step, every_s=log_interval_s)
    try:
        for epoch in range(start_epoch, train_epochs):
            if method.on_epoch_start is not None:
                method.on_epoch_start(model, epoch)
            sums, terms, train_seconds, done = {"loss_sum": 0.0, "correct": 0.0, "examples": 0.0}, {}, 0.0, 0
            while done < data.steps_per_epoch:
                n = min(steps_per_loop, data.steps_per_epoch - done)
                start = time.perf_counter()
                out = train_fn(iterator, n)
                train_seconds += time.perf_counter() - start
                values = {"loss sum": out["loss_sum"], **out["terms"]}
                if not all(math.isfinite(v) for v in values.values()):
                    raise NonFiniteError(
                        f"non-finite loss at epoch {epoch + 1}, steps {step + 1}-{step + n} "
                        f"({', '.join(f'{k} {v}' for k, v in values.items())})")
                for k in sums:
                    sums[k] += out[k]
                terms, done, step = out["terms"], done + n, step + n
                bar.update(step, loss=out["loss_sum"] / out["examples"] + sum(terms.values()))
            last = epoch + 1 == train_epochs
            with_corrupted = bool(data.corrupted) and corruptions_interval > 0 and (
                (epoch + 1) % corruptions_interval == 0 or last)
            recorder = evaluation.CurveRecorder(data.num_classes, method.ood_scores)
            saver = evaluation.PredictionsSaver(output_dir / predictions.SUBDIR if save_predictions and last and chief
                                                else None)
            try:
                flat, _ = evaluation.evaluate(
                    lambda ds: loop.predict(predict_fn, ds), num_classes=data.num_classes, test=data.test,
                    ood=data.ood, corrupted=data.corrupted if with_corrupted else None,
                    ood_score_kinds=method.ood_scores, on_predictions=saver.also(recorder), shifted=data.shifted)
                flat = data.with_derived(flat)
            except NonFiniteError as e:
                saver.abort()
                raise NonFiniteError(f"evaluation after epoch {epoch + 1} (step {step}): {e}") from None
            saver.commit(step=step, num_classes=data.num_classes)
            nll = sums["loss_sum"] / sums["examples"]
            train_metrics = {
                "train/loss": nll + sum(terms.values()), "train/negative_log_likelihood": nll,
                **{f"train/{k}": v for k, v in terms.items()},
                "train/accuracy": sums["correct"] / sums["examples"],
                "train/ms_per_example": 1000.0 * train_seconds / sums["examples"],
                "train/learning_rate": float(np.asarray(optimizer.learning_rate)),
            }
            record = writer.write(step, {**train_metrics, **flat}, epoch=epoch + 1)
            if chief:
                curves.append_curves(output_dir, step, recorder.curves, epoch=epoch + 1)
            logging.info("epoch %d/%d: %s", epoch + 1, train_epochs, summaries.format_metrics(record))
            if chief and ((epoch + 1) % checkpoint_interval == 0 or last):
                path = checkpoint.save(ckpt_dir, step, checkpoint_parts(model, optimizer), {
                    "epoch": epoch + 1, "wall_time_s": earlier_wall_s + time.time() - started_at})
                checkpoint.keep_last(ckpt_dir, keep_checkpoints)
                logging.info("saved %s", path)
    except NonFiniteError as e:
        raise NonFiniteError(f"{e}; stopping. The last good checkpoint is kept: {_latest_name(ckpt_dir)}") from None
    finally:
        writer.close()
    return {**record, "earlier_wall_time_s": earlier_wall_s}


def evaluate_checkpoint(*, model: keras.Model, strategy: tf.distribute.Strategy, data: ImageData,
                        run_dir: str | pathlib.Path,
                        method: method_lib.Method = method_lib.DETERMINISTIC_SEAMS,
                        on_predictions: evaluation.OnPredictions | None = None) -> tuple[dict[str, float], int]:
    """Evaluate the latest verified checkpoint of run directory `run_dir`, or the weights of
    a release bundle there, on every set of `data` (each set's predictions handed to
    `on_predictions`, see `evaluation.evaluate`).

    Returns the flat metrics and the checkpoint's step (a bundle's recorded steps).
    """
    if bundle.is_bundle(run_dir):
        release = bundle.read(run_dir)
        checkpoint.assign_arrays(model.variables, release.weights, f"bundle {run_dir}")
        step = int(release.record.get("steps") or 0)
    else:
        ckpt = checkpoint.restore_latest(pathlib.Path(run_dir) / checkpoint.SUBDIR)
        if ckpt is None:
            raise FileNotFoundError(f"no valid checkpoint under {pathlib.Path(run_dir) / checkpoint.SUBDIR}")
        restore(ckpt, model, None)
        step = ckpt.step
    predict_fn = loop.make_predict_fn(model, strategy, method.predict)
    flat, _ = evaluation.evaluate(lambda ds: loop.predict(predict_fn, ds), num_classes=data.num_classes,
                                  test=data.test, ood=data.ood, corrupted=data.corrupted or None,
                                  ood_score_kinds=method.ood_scores, on_predictions=on_predictions,
                                  shifted=data.shifted)
    return data.with_derived(flat), step


def check_member_records(run_dirs: Sequence[str | pathlib.Path], dataset: str | None = None) -> None:
    """Refuse, naming the run directory, finished runs that cannot form one ensemble: a run
    without a record or flags, another dataset (than `dataset`, when given, else the
    first's), another model apart from its seed, or a run repeated (the same directory, or
    the same training flags and seed: the same network twice)."""
    if not run_dirs:
        raise MemberError("an ensemble needs at least one member")
    records, trained_as = {}, {}
    training_neutral = {*ub_flags.RESULT_NEUTRAL_FLAGS, *ub_flags.EVALUATION_FLAGS}
    for run_dir in run_dirs:
        try:
            records[run_dir] = run_record.read_run_record(run_dir)
        except (OSError, ValueError) as e:
            raise MemberError(f"ensemble member {run_dir}: {e}") from None
        if "flags" not in records[run_dir]:
            raise MemberError(f"ensemble member {run_dir}: its {run_record.RUN_RECORD} records no flags")
    first_dir, first = next(iter(records.items()))
    for run_dir in run_dirs:
        record = records[run_dir]
        got, want = record["flags"].get("dataset"), dataset or first["flags"].get("dataset")
        if got != want:
            raise MemberError(f"ensemble member {run_dir} was trained on {got!r}, not {want!r}")
        if _without_seed(record.get("model")) != _without_seed(first.get("model")):
            raise MemberError(f"ensemble member {run_dir} has model {record.get('model')}, which differs from "
                             f"{first_dir}'s {first.get('model')} in more than its seed")
        if "seed" not in record["flags"]:  # An imported reference model records no training flags.
            continue
        key = json.dumps({k: v for k, v in record["flags"].items() if k not in training_neutral}, sort_keys=True)
        if key in trained_as:
            raise MemberError(f"ensemble members {trained_as[key]} and {run_dir} are the same run (same training "
                              f"flags and seed {record['flags']['seed']}): the ensemble would count it twice")
        trained_as[key] = run_dir


def load_members(run_dirs: Sequence[str | pathlib.Path], strategy: tf.distribute.Strategy,
                 dataset: str | None = None) -> list[keras.Model]:
    """The models of finished runs, checked to form one ensemble (`check_member_records`),
    each from its verified latest checkpoint (`ub.models.load`); a MemberError names the run
    directory at fault."""
    check_member_records(run_dirs, dataset)
    models = []
    with strategy.scope():
        for run_dir in run_dirs:
            try:
                models.append(ub_models.load(run_dir))
            except (OSError, ValueError) as e:  # Missing or corrupt checkpoint, unknown model.
                raise MemberError(f"ensemble member {run_dir}: {e}") from None
    return models


def verify_member_checkpoints(run_dirs: Sequence[str | pathlib.Path]) -> None:
    """Refuse, naming the run directory, a finished run (or release bundle) whose latest
    checkpoint is missing or fails its hashes: checked before anything is trained for the
    ensemble, which `ub.models.load` would otherwise find only after."""
    for run_dir in run_dirs:
        try:
            if bundle.is_bundle(run_dir):
                bundle.read(run_dir)
                continue
            checkpoint.load(checkpoint.latest_path(pathlib.Path(run_dir) / checkpoint.SUBDIR))
        except (OSError, ValueError) as e:
            raise MemberError(f"ensemble member {run_dir}: {e}") from None


def _without_seed(spec: Mapping[str, Any] | None) -> Any:
    if not spec:
        return spec
    return {**spec, "kwargs": {k: v for k, v in spec.get("kwargs", {}).items() if k != "seed"}}


def evaluate_members(models: Sequence[keras.Model], *, strategy: tf.distribute.Strategy, data: ImageData,
                     ood_score_kinds: Sequence[str] = ("msp",),
                     on_predictions: evaluation.OnPredictions | None = None) -> dict[str, float]:
    """Evaluate models as one ensemble (the members' softmax averaged): the usual metrics of
    the mean prediction, the ensemble metrics and `test/<metric>_member_<i>` (each set's
    predictions handed to `on_predictions`, see `evaluation.evaluate`)."""
    predict_fns = [loop.make_predict_fn(model, strategy) for model in models]

    def predict(dataset):
        return stack_members([loop.predict(fn, dataset) for fn in predict_fns])

    flat, _ = evaluation.evaluate(predict, num_classes=data.num_classes, test=data.test, ood=data.ood,
                                  corrupted=data.corrupted or None, ood_score_kinds=ood_score_kinds,
                                  on_predictions=on_predictions, shifted=data.shifted)
    return data.with_derived(flat)


def evaluate_runs(run_dirs: Sequence[str | pathlib.Path], *, strategy: tf.distribute.Strategy,
                  data: ImageData, ood_score_kinds: Sequence[str] = ("msp",)) -> dict[str, float]:
    """Evaluate the finished runs in `run_dirs` as one ensemble (member i = `run_dirs[i]`)."""
    return evaluate_members(load_members(run_dirs, strategy), strategy=strategy, data=data,
                            ood_score_kinds=ood_score_kinds)


def stack_members(members: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Predictions of M single-output models on one dataset as one prediction with a member axis."""
    first = members[0]
    for m in members[1:]:
        if not np.array_equal(m["id"], first["id"]):
            raise ValueError("the members' predictions are not over the same examples in the same order")
    out = {k: v for k, v in first.items() if k not in ("logits", "probs", "member_probs")}
    out["logits"] = np.stack([m["logits"] for m in members], axis=1)
    out["member_probs"] = np.stack([m["probs"] for m in members], axis=1)
    out["probs"] = out["member_probs"].mean(axis=1)
    return out


@dataclasses.dataclass(frozen=True)
class Task:
    """What a family of datasets brings to the shared run.

    `validate(config, method_errors)` raises flags.InvalidFlagsError listing every invalid
    flag; `load_data(config, strategy, train_batch_size)` gives the run's `ImageData`;
    `optimizer(config, steps_per_epoch, train_batch_size)` its optimizer; `config(absl
    flag values, method flag names)` the plain namespace the run takes.
    """
    validate: Callable[[Any, Sequence[str]], None]
    load_data: Callable[[Any, tf.distribute.Strategy, int], ImageData]
    optimizer: Callable[[Any, int, int], keras.optimizers.Optimizer]
    config: Callable[[Any, Sequence[str]], Any]


def run_image_baseline(config: Any, method: method_lib.Method) -> dict[str, Any]:
    """The whole run of an image baseline: `run_baseline` with the image task."""
    return run_baseline(config, method, IMAGE_TASK)


def run_baseline(config: Any, method: method_lib.Method, task: Task | None = None) -> dict[str, Any]:
    """The whole run of a baseline: validate, set up, train (or evaluate), record.

    `config` holds the task's flags and the method's flags as attributes (see
    `flags.image_config`); `task` defaults to `IMAGE_TASK`. Everything that can fail on
    bad input (flags, data, model kwargs) is checked before the output folder is touched;
    then the folder is locked for this process, created or resumed, and `run.json` written
    at the end. Returns the final metrics. Raises flags.InvalidFlagsError, NonFiniteError
    (training stopped, last good checkpoint kept), lock.FolderLockedError or
    output_dir_lib.OutputDirError.
    """
    task = task or IMAGE_TASK
    started_at = time.time()
    strategy, data = set_up(config, method, task)
    spec = method.model_spec(config, data)
    with strategy.scope():
        model = precision.float32_outputs(ub_models.get(spec["name"], **spec["kwargs"]))
        if strategy.num_replicas_in_sync > 1:
            distribution.synchronize_batch_norm(model)
        optimizer = precision.loss_scaled(task.optimizer(config, data.steps_per_epoch,
                                                         train_batch_size(config, method)))
    chief = distribution.is_chief(strategy)
    if not chief:  # A multi-worker run's other workers: the same work and collectives, no files.
        if config.eval_only:
            metrics, _ = evaluate_checkpoint(model=model, strategy=strategy, data=data,
                                             run_dir=config.checkpoint_dir, method=method)
        else:
            metrics = train_and_evaluate(**train_args(config, method, model, optimizer, strategy, data,
                                                      started_at), chief=False)
        evaluation.data_fingerprint(config.dataset, data.test, strategy)  # The chief's run.json gathers it.
        distribution.barrier(strategy)
        return metrics
    run = lifecycle.start_run(config.output_dir, dict(sorted(vars(config).items())), overwrite=config.overwrite,
                              ignore=ub_flags.RESULT_NEUTRAL_FLAGS, started_at=started_at,
                              defaults=ub_flags.flag_defaults(vars(config)))
    logging.info("%s %s (%s) on %d replica(s)", "resuming" if run.resuming else "starting",
                 config.output_dir, method.name, strategy.num_replicas_in_sync)
    if config.eval_only:
        recorder = evaluation.CurveRecorder(data.num_classes, method.ood_scores)
        saver = evaluation.PredictionsSaver(predictions_dir(config))
        metrics, step = evaluate_checkpoint(model=model, strategy=strategy, data=data, run_dir=config.checkpoint_dir,
                                            method=method, on_predictions=saver.also(recorder))
        saver.commit(step=step, num_classes=data.num_classes)
        metrics = summaries.SummaryWriter(config.output_dir).write(step, metrics, eval_only=True)
        curves.append_curves(config.output_dir, step, recorder.curves, eval_only=True)
    else:
        metrics = train_and_evaluate(**train_args(config, method, model, optimizer, strategy, data, started_at))
    run.finish(
        metrics={k: v for k, v in metrics.items() if "/" in k}, seed=config.seed,
        data_fingerprint=evaluation.data_fingerprint(config.dataset, data.test, strategy), model=spec,
        earlier_wall_time_s=metrics.get("earlier_wall_time_s", 0.0),
        extra={"method": method.name, "num_params": model.count_params(),
               "num_replicas": strategy.num_replicas_in_sync, "train_examples": data.num_train_examples,
               "steps": metrics.get("step"), "checkpoint_dir": checkpoint.SUBDIR})
    distribution.barrier(strategy)
    print(summaries.results_table(metrics, num_params=model.count_params()))
    return metrics


def train_args(config: Any, method: method_lib.Method, model: keras.Model, optimizer: keras.optimizers.Optimizer,
               strategy: tf.distribute.Strategy, data: ImageData, started_at: float) -> dict[str, Any]:
    """`train_and_evaluate`'s arguments from the flags."""
    return dict(
        model=model, optimizer=optimizer, strategy=strategy, data=data, method=method,
        seed=config.seed, output_dir=config.output_dir, train_epochs=config.train_epochs,
        global_batch_size=train_batch_size(config, method), checkpoint_interval=config.checkpoint_interval,
        keep_checkpoints=config.keep_checkpoints, corruptions_interval=getattr(config, "corruptions_interval", 0),
        steps_per_loop=config.steps_per_loop, log_interval_s=config.log_interval_s, started_at=started_at,
        save_predictions=bool(getattr(config, "save_predictions", False)))


def set_up(config: Any, method: method_lib.Method, task: Task | None = None
           ) -> tuple[tf.distribute.Strategy, ImageData]:
    """Validate the flags, seed and make TF deterministic, create the strategy, load the
    data (of `task`, default `IMAGE_TASK`)."""
    task = task or IMAGE_TASK
    task.validate(config, method.validate(config))
    if not loop.run_ops_one_at_a_time():
        logging.warning("TensorFlow started before the run: its ops may run side by side, so the run "
                        "may not be bitwise repeatable when other processes share the cores")
    if config.strategy == "mirrored" and config.num_cores:
        distribution.split_cpu(config.num_cores)  # No-op with GPUs; else N logical CPUs.
    # Before any TF op: a multi-worker strategy configures collectives at TF's start-up.
    strategy = distribution.get_strategy(config.strategy, config.num_cores, config.tpu,
                                         getattr(config, "peer_timeout_s", 300.0))
    loop.enable_determinism(config.seed)
    logging.info("dtype policy %s", precision.set_policy(getattr(config, "mixed_precision", False)))
    return strategy, task.load_data(config, strategy, train_batch_size(config, method))


def image_data(config: Any, strategy: tf.distribute.Strategy, train_batch_size: int,
               dataset_kwargs: Mapping[str, Any] | None = None) -> ImageData:
    """`load_image_data` with the corrupted sets when the flags evaluate them."""
    return load_image_data(config, strategy, with_corrupted=ub_flags.evaluates_corrupted(config),
                           train_batch_size=train_batch_size,
                           dataset_kwargs=dataset_kwargs)


def predictions_dir(config: Any) -> pathlib.Path | None:
    """Where a run writes its final per-example predictions: `<output_dir>/predictions` with
    --save_predictions, else None."""
    if not getattr(config, "save_predictions", False):
        return None
    return pathlib.Path(config.output_dir) / predictions.SUBDIR


def train_batch_size(config: Any, method: method_lib.Method) -> int:
    """Distinct examples per training step: --batch_size counts the rows of the formatted
    batch, so a method that repeats each example R times reads batch_size / R of them."""
    return config.batch_size // method.batch_repetitions


def run_ensemble_of_runs(config: Any, method: method_lib.Method, task: Task | None = None,
                         member: method_lib.Method | None = None) -> dict[str, Any]:
    """An ensemble baseline: the first `config.ensemble_size` finished runs of
    `config.run_dirs` evaluated as one model, with the same lifecycle as a trained baseline.

    With --train_missing_members, the run directories that hold no finished run are first
    trained (or resumed) with `member`, the members' method, as its own script would with
    the same flags and seed --seed + the directory's position. The members are checked
    (same dataset as --dataset, same model but for the seed, verified checkpoints) before
    the output folder is touched. Image runs evaluate the corrupted sets when
    --corruptions_interval > 0 or --corruption_types is given.
    """
    run_dirs = list(config.run_dirs[:config.ensemble_size])
    if getattr(config, ub_flags.TRAIN_MISSING_MEMBERS, False):
        train_missing_members(config, method, member, run_dirs, task)
    started_at = time.time()  # The members' training is in their own records.
    strategy, data = set_up(config, method, task)
    members = load_members(run_dirs, strategy, dataset=config.dataset)
    run = lifecycle.start_run(config.output_dir, dict(sorted(vars(config).items())), overwrite=config.overwrite,
                              ignore=ub_flags.RESULT_NEUTRAL_FLAGS, started_at=started_at,
                              defaults=ub_flags.flag_defaults(vars(config)))
    recorder = evaluation.CurveRecorder(data.num_classes, method.ood_scores)
    saver = evaluation.PredictionsSaver(predictions_dir(config))
    metrics = evaluate_members(members, strategy=strategy, data=data, ood_score_kinds=method.ood_scores,
                               on_predictions=saver.also(recorder))
    saver.commit(step=0, num_classes=data.num_classes, members=len(members))
    summaries.SummaryWriter(config.output_dir).write(0, metrics)
    curves.append_curves(config.output_dir, 0, recorder.curves)
    num_params = sum(m.count_params() for m in members)
    run.finish(metrics=metrics, seed=config.seed, model=None,
               data_fingerprint=evaluation.data_fingerprint(config.dataset, data.test, strategy),
               extra={"method": method.name, "members": [str(d) for d in run_dirs], "num_params": num_params,
                      "num_replicas": strategy.num_replicas_in_sync})
    print(summaries.results_table(metrics, num_params=num_params))
    return metrics


def recorded_flags(run_dir: str | pathlib.Path, wanted: Mapping[str, Any]) -> dict[str, Any] | None:
    """The flags a started run in `run_dir` recorded (None when it has none), with the flags of
    `wanted` it predates filled in at their defaults (`output_dir.with_defaults`)."""
    flags_path = pathlib.Path(run_dir) / output_dir_lib.FLAGS_FILE
    if not flags_path.is_file():
        return None
    return output_dir_lib.with_defaults(json.loads(flags_path.read_text()), wanted, ub_flags.flag_defaults(wanted))


def member_config(config: Any, run_dir: str | pathlib.Path, index: int) -> Any:
    """The flags of ensemble member `index` as its own script takes them: the ensemble's
    flags without the ensemble-only ones, its run directory and seed `config.seed + index`
    (never --overwrite: the ensemble's own folder is what that flag is for). What a member
    evaluates is its own: a started member keeps its recorded evaluation flags (they do not
    change its weights); a new one drops --corruption_types without --corruptions_interval,
    since the ensemble scores those sets once and a training member would refuse the flag."""
    ensemble_only = {*ub_flags.ENSEMBLE_FLAGS, ub_flags.TRAIN_MISSING_MEMBERS}
    values = {k: v for k, v in vars(config).items() if k not in ensemble_only}
    if "corruption_types" in values and not values.get("corruptions_interval"):
        values["corruption_types"] = []
    recorded = recorded_flags(run_dir, values)
    if recorded is not None:
        values.update({k: recorded[k] for k in ub_flags.EVALUATION_FLAGS if k in recorded and k in values})
    return type(config)(**{**values, "output_dir": str(run_dir), "seed": config.seed + index, "overwrite": False,
                           "checkpoint_dir": None})


def member_conflicts(config: Any, run_dirs: Sequence[str | pathlib.Path]) -> list[str]:
    """Why `run_dirs` cannot be members trained by this ensemble (empty when they can): a
    started or finished member made with other training flags (its evaluation flags are its
    own, `member_config`), or two members with one seed (they would be the same network)."""
    errors, seeds = [], {}
    for i, run_dir in enumerate(run_dirs):
        wanted = vars(member_config(config, run_dir, i))
        seed = wanted["seed"]
        recorded = recorded_flags(run_dir, wanted)
        if recorded is not None:
            seed = recorded.get("seed", seed)
            finished = (pathlib.Path(run_dir) / run_record.RUN_RECORD).is_file()
            ignore = {"seed", *ub_flags.RESULT_NEUTRAL_FLAGS}
            recorded, wanted = ({k: v for k, v in d.items() if k not in ignore} for d in (recorded, wanted))
            if json.loads(json.dumps(wanted)) != recorded:
                errors.append(f"ensemble member {run_dir} was {'trained' if finished else 'started'} with other "
                              f"flags than this ensemble's ({output_dir_lib.describe_differences(recorded, wanted)})")
        if seed in seeds:
            errors.append(f"ensemble members {seeds[seed]} and {run_dir} both have seed {seed}")
        seeds.setdefault(seed, run_dir)
    return errors


def train_missing_members(config: Any, method: method_lib.Method, member: method_lib.Method | None,
                          run_dirs: Sequence[str | pathlib.Path], task: Task | None) -> None:
    """Train (or resume) with `member` every run directory of `run_dirs` without a finished
    run. Everything is checked first: the ensemble's flags, each missing member's, that the
    members already there were made with the same training flags and other seeds, and that
    their latest checkpoints verify."""
    task = task or IMAGE_TASK
    if member is None:
        raise ub_flags.InvalidFlagsError(f"--{ub_flags.TRAIN_MISSING_MEMBERS}: this script cannot train members")
    task.validate(config, [*method.validate(config), *(
        [f"--{ub_flags.TRAIN_MISSING_MEMBERS} trains; it cannot be combined with --eval_only"]
        if getattr(config, "eval_only", False) else [])])
    conflicts = member_conflicts(config, run_dirs)
    if conflicts:
        raise MemberError("; ".join(conflicts))
    is_finished = [(pathlib.Path(d) / run_record.RUN_RECORD).exists() for d in run_dirs]
    missing = [(i, d) for i, (d, done) in enumerate(zip(run_dirs, is_finished)) if not done]
    finished = [d for d, done in zip(run_dirs, is_finished) if done]
    if finished:
        check_member_records(finished, config.dataset)
        verify_member_checkpoints(finished)
    configs = [member_config(config, d, i) for i, d in missing]
    for member_flags in configs:
        task.validate(member_flags, member.validate(member_flags))
    for n, member_flags in enumerate(configs, 1):
        logging.info("training ensemble member %s (seed %d), %d of %d missing", member_flags.output_dir,
                     member_flags.seed, n, len(configs))
        run_baseline(member_flags, member, task)


def default_optimizer(config: Any, steps_per_epoch: int, global_batch_size: int | None = None
                      ) -> keras.optimizers.Optimizer:
    """Nesterov SGD on the --lr_schedule schedule (see training.schedules); the peak rate
    scales with `global_batch_size` distinct examples per step (default --batch_size)."""
    return schedules.nesterov_sgd(schedules.image_schedule(
        base_learning_rate=config.base_learning_rate, global_batch_size=global_batch_size or config.batch_size,
        steps_per_epoch=steps_per_epoch, train_epochs=config.train_epochs,
        warmup_epochs=config.lr_warmup_epochs, decay_fractions=config.lr_decay_epochs,
        decay_ratio=config.lr_decay_ratio, kind=config.lr_schedule), momentum=config.momentum)


def run_from_flags(flag_values: Any, method: method_lib.Method,
                   run: Callable[[Any, method_lib.Method, Task], Any] = run_baseline,
                   task: Task | None = None) -> None:
    """`run` (a baseline's whole run, of `task`, default `IMAGE_TASK`) for a script's absl
    flags: bad flags are a usage error; a run that cannot start, whose ensemble members do
    not fit, or that stops on a non-finite value exits non-zero with one line."""
    task = task or IMAGE_TASK
    try:
        run(task.config(flag_values, method.method_flags), method, task)
    except ub_flags.InvalidFlagsError as e:
        raise app.UsageError(str(e)) from None
    except (NonFiniteError, lock.FolderLockedError, output_dir_lib.OutputDirError, MemberError,
            distribution.ClusterError) as e:
        logging.error("%s", e)
        sys.exit(f"stopped: {e}")


IMAGE_TASK = Task(validate=ub_flags.validate_image_flags, load_data=image_data, optimizer=default_optimizer,
                  config=ub_flags.image_config)


def _latest_name(ckpt_dir: pathlib.Path) -> str:
    found = checkpoint.list_checkpoints(ckpt_dir)
    return found[-1].name if found else "none yet"
