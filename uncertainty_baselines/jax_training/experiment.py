"""The run of a JAX baseline: the suite's run lifecycle with a Flax model, optax and a config.

Same life and outputs as the Keras baselines (docs/ARCHITECTURE.md, "One run lifecycle"):

1. validate the config (common fields, the model's, the method's; every error at once);
2. devices (a data-parallel mesh), the data (a missing dataset fails here), the model and
   its initial parameters, the pretrained weights if `model_init` names a big_vision
   `.npz` (a parameter that does not fit fails here, named);
3. `runs.lifecycle.start_run`: lock the output folder, refuse one holding another run
   (unless `overwrite`), write `flags.json` (the flattened config) or resume;
4. train with resume: each epoch ends with an evaluation (`metrics.jsonl`, TensorBoard,
   `curves.jsonl`: reliability diagrams and ROC curves for reports) and,
   every `checkpoint_interval` epochs and at the end, a checkpoint (`runs.checkpoint`
   format: params.npz + opt_state.npz + sha256 manifest). A restart restores the latest
   checkpoint and replays the remaining steps of the same deterministic data stream with
   the same step-seeded dropout, so the final metrics equal an uninterrupted run's;
5. `Run.finish`: `run.json`; the results table is printed.
"""
from __future__ import annotations

import importlib.metadata
import pathlib
import sys
import time
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import app, flags, logging

from uncertainty_baselines import datasets as ub_datasets
from uncertainty_baselines.jax_training import checkpoints, config as config_lib, data as data_lib
from uncertainty_baselines.jax_training import evaluation, loop, optim, pretrained, vit
from uncertainty_baselines.jax_training.method import Method
from uncertainty_baselines.runs import checkpoint, lifecycle, lock, predictions, progress, summaries
from uncertainty_baselines.runs import curves as run_curves
from uncertainty_baselines.runs import output_dir as output_dir_lib

# Config fields that do not change the result; they may differ when a run is resumed.
RESULT_NEUTRAL = ("output_dir", "data_dir", "overwrite", "save_predictions", "keep_checkpoints", "log_interval_s",
                  "cache_eval")
# Every config's common fields (a method adds its own, and `model` holds ViT fields).
COMMON_FIELDS = ("method", "dataset", "seed", "train_examples", "batch_size", "eval_batch_size",
                 "train_epochs", "num_devices", "ood_datasets", "corruption_types", "severities",
                 "corruptions_interval", "checkpoint_interval", "keep_checkpoints", "log_interval_s",
                 "cache_eval", "model_init", "dont_load", "optimizer", "lr", "grad_clip_norm", "model")
JAX_PACKAGES = ("jax", "jaxlib", "flax", "optax", "ml_collections")


def config_errors(config: ml_collections.ConfigDict, method: Method) -> list[str]:
    """Every problem of `config` for `method` that can be seen without data."""
    errors = [f"the config has no field {f!r} (every JAX baseline config sets it)" for f in COMMON_FIELDS
              if f not in config]
    if errors:
        return errors
    if config.method != method.name:
        errors.append(f"method: this config is for {config.method!r}, this script runs {method.name!r}")
    if config.dataset not in ub_datasets.DATASETS:
        errors.append(f"dataset: unknown {config.dataset!r}; valid: {', '.join(ub_datasets.DATASETS)}")
    errors += [f"ood_datasets: unknown {name!r}" for name in config.ood_datasets if name not in ub_datasets.DATASETS]
    for field in ("batch_size", "eval_batch_size", "train_epochs", "checkpoint_interval", "keep_checkpoints"):
        if config[field] < 1:
            errors.append(f"{field} must be >= 1, got {config[field]}")
    for field in ("train_examples", "num_devices", "corruptions_interval", "grad_clip_norm"):
        if config[field] < 0:
            errors.append(f"{field} must be >= 0, got {config[field]}")
    visible = jax.device_count()
    if config.num_devices > visible:
        errors.append(f"num_devices={config.num_devices}, but {visible} device(s) are visible "
                      "(CPU: XLA_FLAGS=--xla_force_host_platform_device_count=N)")
    devices = config.num_devices or visible
    for field in ("batch_size", "eval_batch_size"):
        if config[field] >= 1 and config[field] % devices:
            errors.append(f"{field} {config[field]} is not divisible by the {devices} device(s)")
    if config.optimizer not in optim.OPTIMIZERS:
        errors.append(f"optimizer must be one of {optim.OPTIMIZERS}, got {config.optimizer!r}")
    if config.lr.decay_type not in optim.DECAY_TYPES:
        errors.append(f"lr.decay_type must be one of {optim.DECAY_TYPES}, got {config.lr.decay_type!r}")
    if config.lr.base <= 0 or config.lr.warmup_steps < 0:
        errors.append(f"lr.base must be > 0 and lr.warmup_steps >= 0, got {config.lr.base}, {config.lr.warmup_steps}")
    if config.corruption_types:
        from uncertainty_baselines.datasets import corruptions
        errors += [f"corruption_types: unknown {t!r}; valid: {', '.join(corruptions.CORRUPTIONS)}"
                   for t in config.corruption_types if t not in corruptions.CORRUPTIONS]
        errors += [f"severities: {s} is not in 1..5" for s in config.severities if not 1 <= s <= 5]
    if config.model_init and not pathlib.Path(config.model_init).is_file():
        errors.append(f"model_init: pretrained checkpoint {config.model_init} does not exist")
    errors += vit.model_errors(config.model.to_dict())
    return errors + list(method.validate(config))


def _check(errors: list[str]) -> None:
    if errors:
        raise config_lib.ConfigError("invalid config: " + "; ".join(errors))


def run(config: ml_collections.ConfigDict, method: Method, *, output_dir: str | pathlib.Path,
        data_dir: str | None = None, overwrite: bool = False, config_file: str | None = None,
        save_predictions: bool = False) -> dict[str, Any]:
    """The whole run (see the module docstring); returns the final flat metrics. With
    `save_predictions` the final evaluation also writes every evaluated set's per-example
    logits, ids and labels to `<output_dir>/predictions/` (format: runs/predictions.py).

    Raises config.ConfigError, pretrained.PretrainedError, ub.datasets.DataNotFoundError
    (all before the output folder is touched), lock.FolderLockedError,
    output_dir.OutputDirError, loop.NonFiniteError (the last good checkpoint is kept).
    """
    started_at = time.time()
    _check(config_errors(config, method))
    mesh = loop.make_mesh(config.num_devices)
    data = data_lib.load_image_data(
        dataset=config.dataset, data_dir=data_dir, seed=config.seed, train_examples=config.train_examples,
        ood_datasets=tuple(config.ood_datasets),
        corruption_types=tuple(config.corruption_types) if config.corruptions_interval else (),
        severities=tuple(config.severities), cache_eval=config.cache_eval)
    steps_per_epoch = data.num_train_examples // config.batch_size
    _check(vit.model_errors(config.model.to_dict(), data.image_shape) + (
        [] if steps_per_epoch else [f"batch_size {config.batch_size} exceeds the {data.num_train_examples} "
                                    "training examples: no full step per epoch"]))
    model = method.build_model(config, data.num_classes)
    params = jax.jit(model.init)(jax.random.key(config.seed), jnp.zeros((1, *data.image_shape)))["params"]
    loaded = None
    if config.model_init:
        params, loaded = pretrained.load_pretrained(params, config.model_init, dont_load=tuple(config.dont_load))
        logging.info("loaded %d parameters from %s (kept at init: %s; resampled: %s; unused: %s)",
                     len(loaded.loaded), config.model_init, loaded.kept_init, loaded.resampled, loaded.unused)
    multipliers = method.lr_multipliers(config, params) if method.lr_multipliers else None
    tx, lr_fn = optim.make_optimizer(config, config.train_epochs * steps_per_epoch, multipliers)
    opt_state = tx.init(params)

    flat_flags = {"method": method.name, **config_lib.flatten(config), "output_dir": str(output_dir),
                  "data_dir": data_dir, "overwrite": overwrite, "save_predictions": save_predictions}
    num_params = int(sum(np.size(x) for x in jax.tree_util.tree_leaves(params)))
    started = lifecycle.start_run(output_dir, flat_flags, overwrite=overwrite, ignore=RESULT_NEUTRAL,
                                  started_at=started_at)
    try:
        logging.info("%s %s (%s) on %d device(s)", "resuming" if started.resuming else "starting",
                     output_dir, method.name, mesh.size)
        record, fingerprint = train_and_evaluate(
            config, model, params, opt_state, tx, lr_fn, mesh, data, method, pathlib.Path(output_dir),
            steps_per_epoch, started_at, save_predictions)
        metrics = {k: v for k, v in record.items() if "/" in k}
        started.finish(
            metrics=metrics, seed=config.seed, data_fingerprint=fingerprint,
            model={"name": "flax_vit", "framework": "flax",
                   "kwargs": {"num_classes": data.num_classes, **config.model.to_dict()}},
            earlier_wall_time_s=record.get("earlier_wall_time_s", 0.0),
            extra={"method": method.name, "framework": "jax", "num_params": num_params, "num_devices": mesh.size,
                   "train_examples": data.num_train_examples, "steps": record.get("step"),
                   "checkpoint_dir": checkpoint.SUBDIR, "config_file": config_file,
                   "jax_packages": _versions(JAX_PACKAGES),
                   "pretrained": loaded.as_dict() if loaded else None})
    except BaseException:
        started.folder_lock.release()
        raise
    print(summaries.results_table(metrics, num_params))
    return metrics


def train_and_evaluate(config: ml_collections.ConfigDict, model: Any, params: Any, opt_state: Any, tx: Any,
                       lr_fn: Any, mesh: Any, data: data_lib.ImageData, method: Method, output_dir: pathlib.Path,
                       steps_per_epoch: int, started_at: float, save_predictions: bool = False
                       ) -> tuple[dict[str, Any], str | None]:
    """Train `config.train_epochs` epochs from the latest checkpoint, evaluating each (the
    last evaluation's predictions saved when `save_predictions`); returns the last metrics
    record (plus `earlier_wall_time_s`) and the test data fingerprint."""
    ckpt_dir = output_dir / checkpoint.SUBDIR
    start_epoch, step, earlier_wall_s, fingerprint = 0, 0, 0.0, None
    restored = checkpoints.restore_latest(ckpt_dir, {"params": params, "opt_state": opt_state})
    if restored is not None:
        trees, step, state = restored
        params, opt_state = trees["params"], trees["opt_state"]
        start_epoch, earlier_wall_s = state["epoch"], state.get("wall_time_s", 0.0)
        fingerprint = state.get("data_fingerprint")
        logging.info("resumed from %s (epoch %d, step %d)", ckpt_dir / f"ckpt-{step:09d}", start_epoch, step)
    summaries.truncate_metrics(output_dir, after_step=step)
    records = summaries.read_metrics(output_dir)
    record: dict[str, Any] = records[-1] if records else {}

    rep = loop.replicated(mesh)
    state = loop.TrainState(jax.device_put(params, rep), jax.device_put(opt_state, rep),
                            jax.device_put(np.int32(step), rep), jax.device_put(loop.zero_sums(), rep))
    train_step = loop.make_train_step(model, tx, mesh, config.seed)
    predict = loop.make_predict_step(model, mesh)
    batches = data_lib.train_batches(data.train, config.batch_size, start_step=step)
    total = config.train_epochs * steps_per_epoch
    bar = progress.Progress(total, initial=step, every_s=config.log_interval_s)
    eval_batch = config.eval_batch_size
    writer = summaries.SummaryWriter(output_dir)
    try:
        for epoch in range(start_epoch, config.train_epochs):
            state.sums = jax.device_put(loop.zero_sums(), rep)
            first = step

            def log(done: int, sums: Mapping[str, float]) -> None:
                bar.update(first + done, loss=sums["loss_sum"] / max(sums["examples"], 1.0))

            state, seconds = loop.train_steps(state, train_step, batches, steps_per_epoch, mesh,
                                              log_every_s=config.log_interval_s, on_log=log)
            sums = loop.check_finite_sums(state, f"epoch {epoch + 1}")
            step += steps_per_epoch
            bar.update(step, force=True, loss=sums["loss_sum"] / sums["examples"])
            last = epoch + 1 == config.train_epochs
            with_corrupted = bool(data.corrupted) and (
                (epoch + 1) % config.corruptions_interval == 0 or last)
            saver = (predictions.PredictionsWriter(output_dir / predictions.SUBDIR) if save_predictions and last
                     else None)
            try:
                flat, fingerprint, curves = evaluation.evaluate(
                    predict, state.params, mesh, num_classes=data.num_classes,
                    test=lambda: data_lib.eval_batches(data.test, eval_batch),
                    ood={name: (lambda ds=ds: data_lib.eval_batches(ds, eval_batch)) for name, ds in data.ood.items()},
                    corrupted={key: (lambda ds=ds: data_lib.eval_batches(ds, eval_batch))
                               for key, ds in data.corrupted.items()} if with_corrupted else None,
                    ood_kinds=method.ood_scores, test_name=config.dataset,
                    on_predictions=saver.add if saver else None)
            except loop.NonFiniteError as e:
                if saver:
                    saver.abort()
                raise loop.NonFiniteError(f"evaluation after epoch {epoch + 1} (step {step}): {e}") from None
            if saver:
                logging.info("saved predictions to %s", saver.commit(step=step, num_classes=data.num_classes))
            nll = sums["loss_sum"] / sums["examples"]
            train_metrics = {
                "train/loss": nll, "train/negative_log_likelihood": nll,
                "train/accuracy": sums["correct"] / sums["examples"],
                "train/ms_per_example": 1000.0 * seconds / sums["examples"],
                "train/learning_rate": float(lr_fn(step - 1)),
            }
            record = writer.write(step, {**train_metrics, **flat}, epoch=epoch + 1)
            run_curves.append_curves(output_dir, step, curves, epoch=epoch + 1)
            logging.info("epoch %d/%d: %s", epoch + 1, config.train_epochs, summaries.format_metrics(record))
            if (epoch + 1) % config.checkpoint_interval == 0 or last:
                path = checkpoints.save(ckpt_dir, step, {"params": state.params, "opt_state": state.opt_state}, {
                    "epoch": epoch + 1, "wall_time_s": earlier_wall_s + time.time() - started_at,
                    "data_fingerprint": fingerprint})
                checkpoint.keep_last(ckpt_dir, config.keep_checkpoints)
                logging.info("saved %s", path)
    except loop.NonFiniteError as e:
        found = checkpoint.list_checkpoints(ckpt_dir)
        raise loop.NonFiniteError(f"{e}; stopping. The last good checkpoint is kept: "
                                  f"{found[-1].name if found else 'none yet'}") from None
    finally:
        writer.close()
    return {**record, "earlier_wall_time_s": earlier_wall_s}, fingerprint


def _versions(names: tuple[str, ...]) -> dict[str, str | None]:
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name.replace("_", "-"))
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def main(method: Method) -> None:
    """A baseline script's entry point: `--config=FILE [--config.<field>=value ...]
    --output_dir=DIR [--data_dir=DIR] [--overwrite] [--save_predictions]`. Bad input (config file, override,
    config values, pretrained checkpoint, missing data) exits with status 2 and one
    `error:` line before anything is written."""
    # The run-location flags (result-neutral); defined once per process (the same names as
    # the Keras baselines', which may already have defined them in this process).
    if "output_dir" not in flags.FLAGS:
        flags.DEFINE_string("output_dir", None, "Run folder (created, or resumed with the same config).")
    if "data_dir" not in flags.FLAGS:
        flags.DEFINE_string("data_dir", None, "Prepared datasets (default: $UB_DATA_DIR, else TFDS's).")
    if "overwrite" not in flags.FLAGS:
        flags.DEFINE_bool("overwrite", False, "Delete a run with another config in --output_dir.")
    if "save_predictions" not in flags.FLAGS:
        flags.DEFINE_bool("save_predictions", False, "Write the final evaluation's per-example predictions "
                          "to <output_dir>/predictions/ (runs/predictions.py).")

    def parse(argv: list[str]) -> tuple[ml_collections.ConfigDict, str]:
        path, _, rest = config_lib.split_config_args(argv[1:])
        try:
            config = config_lib.parse_config(argv[1:])
            flags.FLAGS([argv[0], *rest])
        except (config_lib.ConfigError, flags.Error) as e:
            config_lib.exit_on_error(e)
        if not flags.FLAGS.output_dir:
            config_lib.exit_on_error(config_lib.ConfigError("--output_dir is required"))
        return config, path

    def run_cli(parsed: tuple[ml_collections.ConfigDict, str]) -> None:
        config, path = parsed
        values = flags.FLAGS
        try:
            run(config, method, output_dir=values.output_dir, data_dir=values.data_dir,
                overwrite=values.overwrite, config_file=path, save_predictions=values.save_predictions)
        except (config_lib.ConfigError, pretrained.PretrainedError, ub_datasets.DataNotFoundError,
                lock.FolderLockedError, output_dir_lib.OutputDirError) as e:
            config_lib.exit_on_error(e)
        except loop.NonFiniteError as e:
            logging.error("%s", e)
            sys.exit(f"stopped: {e}")

    app.run(run_cli, flags_parser=parse)
