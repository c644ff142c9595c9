r"""Deterministic Wide ResNet on CIFAR-10/100 (and the other image sets of ub.datasets).

The baseline every other CIFAR method is compared against: one WRN trained with
Nesterov SGD, L2 as a loss term, linear warm-up and piecewise LR decay, evaluated on the
clean test set, OOD sets and corrupted sets. The shared machinery (flags, schedule,
distributed train step, evaluation, checkpoints, summaries, run record) lives in
`uncertainty_baselines.training`; this script is the method.

  python baselines/cifar/deterministic.py --dataset=cifar10 --data_dir=/work/data \
      --output_dir=/tmp/wrn28-10 --depth=28 --width=10 --batch_size=512 \
      --eval_on_ood --ood_dataset=cifar100,svhn_cropped --corruptions_interval=200

Restarting the same command resumes from the latest checkpoint and ends with the same
metrics as an uninterrupted run. See baselines/cifar/README.md.
"""
import sys
import time

from absl import app, flags, logging

import uncertainty_baselines as ub
from uncertainty_baselines.runs import checkpoint, output_dir, run_record, summaries
from uncertainty_baselines.training import distribution, evaluation, experiment, loop, schedules
from uncertainty_baselines.training import flags as ub_flags

ub_flags.define_image_flags()
flags.DEFINE_integer("depth", 28, "Wide ResNet depth (6n + 4).")
flags.DEFINE_integer("width", 10, "Wide ResNet width multiplier.")
FLAGS = flags.FLAGS


def model_spec(data) -> dict:
    """Registry name and kwargs of the model: recorded in run.json for ub.models.load."""
    return {"name": "wide_resnet", "kwargs": {
        "input_shape": list(data.input_shape), "depth": FLAGS.depth, "width_multiplier": FLAGS.width,
        "num_classes": data.num_classes, "l2": FLAGS.l2, "seed": FLAGS.seed}}


def main(argv):
    del argv
    try:
        ub_flags.validate_image_flags(FLAGS)
        if (FLAGS.depth - 4) % 6 or FLAGS.depth < 10 or FLAGS.width < 1:
            raise ValueError(f"invalid flags:\n  --depth must be 6n+4 >= 10 and --width >= 1, "
                             f"got {FLAGS.depth} and {FLAGS.width}")
    except ValueError as e:
        raise app.UsageError(str(e))
    start, code_version = time.time(), run_record.git_commit()
    if FLAGS.strategy == "mirrored" and FLAGS.num_cores:
        distribution.split_cpu(FLAGS.num_cores)  # No-op with GPUs; else N logical CPUs.
    flag_values = ub_flags.image_flag_values(FLAGS, "depth", "width")
    resuming = output_dir.prepare_output_dir(FLAGS.output_dir, flag_values, overwrite=FLAGS.overwrite,
                                             ignore=ub_flags.RESULT_NEUTRAL_FLAGS)
    loop.enable_determinism(FLAGS.seed)
    strategy = distribution.get_strategy(FLAGS.strategy, FLAGS.num_cores, FLAGS.tpu)
    logging.info("%s %s on %d replica(s)", "resuming" if resuming else "starting", FLAGS.output_dir,
                 strategy.num_replicas_in_sync)
    with_corrupted = FLAGS.corruptions_interval > 0 or (FLAGS.eval_only and bool(FLAGS.corruption_types))
    data = experiment.load_image_data(FLAGS, strategy, with_corrupted=with_corrupted)
    spec = model_spec(data)
    with strategy.scope():
        model = ub.models.get(spec["name"], **spec["kwargs"])
        if strategy.num_replicas_in_sync > 1:
            distribution.synchronize_batch_norm(model)
        optimizer = schedules.nesterov_sgd(schedules.image_schedule(
            base_learning_rate=FLAGS.base_learning_rate, global_batch_size=FLAGS.batch_size,
            steps_per_epoch=data.steps_per_epoch, train_epochs=FLAGS.train_epochs,
            warmup_epochs=FLAGS.lr_warmup_epochs, decay_fractions=FLAGS.lr_decay_epochs,
            decay_ratio=FLAGS.lr_decay_ratio), momentum=FLAGS.momentum)

    if FLAGS.eval_only:
        metrics, step = experiment.evaluate_checkpoint(model=model, strategy=strategy, data=data,
                                                       run_dir=FLAGS.checkpoint_dir)
        metrics = summaries.SummaryWriter(FLAGS.output_dir).write(step, metrics, eval_only=True)
    else:
        try:
            metrics = experiment.train_and_evaluate(
                model=model, optimizer=optimizer, strategy=strategy, data=data,
                output_dir=FLAGS.output_dir, train_epochs=FLAGS.train_epochs,
                global_batch_size=FLAGS.batch_size, checkpoint_interval=FLAGS.checkpoint_interval,
                keep_checkpoints=FLAGS.keep_checkpoints, corruptions_interval=FLAGS.corruptions_interval,
                steps_per_loop=FLAGS.steps_per_loop, log_interval_s=FLAGS.log_interval_s,
                started_at=start)
        except experiment.NonFiniteLossError as e:
            logging.error("%s", e)
            sys.exit(f"stopped: {e}")
    fingerprint = evaluation.data_fingerprint(FLAGS.dataset, data.test, strategy)
    run_record.write_run_record(
        FLAGS.output_dir, flags=flag_values, metrics={k: v for k, v in metrics.items() if "/" in k},
        seed=FLAGS.seed, data_fingerprint=fingerprint, model=spec, git=code_version,
        wall_time_s=metrics.get("earlier_wall_time_s", 0.0) + time.time() - start,  # all restarts
        extra={"num_params": model.count_params(), "num_replicas": strategy.num_replicas_in_sync,
               "train_examples": data.num_train_examples, "steps": metrics.get("step"),
               "checkpoint_dir": checkpoint.SUBDIR})
    print(experiment.results_table(metrics, num_params=model.count_params()))


if __name__ == "__main__":
    app.run(main)
