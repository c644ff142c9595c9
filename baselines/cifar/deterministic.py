r"""Deterministic Wide ResNet on CIFAR-10/100 (and the other image sets of ub.datasets).

The baseline every other CIFAR method is compared against: one WRN trained with
Nesterov SGD, L2 as a loss term, linear warm-up and piecewise LR decay, evaluated on the
clean test set, OOD sets and corrupted sets. Every seam of `training.method.Method` is
at its default; the run itself (flags, data, resume, evaluation, checkpoints, run
record) is `uncertainty_baselines.training.experiment`.

  python baselines/cifar/deterministic.py --dataset=cifar10 --data_dir=/work/data \
      --output_dir=/tmp/wrn28-10 --depth=28 --width=10 --batch_size=512 \
      --eval_on_ood --ood_dataset=cifar100,svhn_cropped --corruptions_interval=200

Restarting the same command resumes from the latest checkpoint and ends with the same
metrics as an uninterrupted run. See baselines/cifar/README.md.
"""
from absl import app, flags

from uncertainty_baselines.training import experiment, method
from uncertainty_baselines.training import flags as ub_flags

ub_flags.define_image_flags()
flags.DEFINE_integer("depth", 28, "Wide ResNet depth (6n + 4).")
flags.DEFINE_integer("width", 10, "Wide ResNet width multiplier.")
FLAGS = flags.FLAGS


def validate(config) -> list[str]:
    if (config.depth - 4) % 6 or config.depth < 10 or config.width < 1:
        return [f"--depth must be 6n+4 >= 10 and --width >= 1, got {config.depth} and {config.width}"]
    return []


def model_spec(config, data) -> dict:
    return {"name": "wide_resnet", "kwargs": {
        "input_shape": list(data.input_shape), "depth": config.depth, "width_multiplier": config.width,
        "num_classes": data.num_classes, "l2": config.l2, "seed": config.seed}}


DETERMINISTIC = method.Method("deterministic", model_spec=model_spec, method_flags=("depth", "width"),
                              validate=validate)

if __name__ == "__main__":
    app.run(lambda argv: experiment.run_from_flags(FLAGS, DETERMINISTIC))
