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
ub_flags.define_wide_resnet_flags()
FLAGS = flags.FLAGS


def model_spec(config, data) -> dict:
    return {"name": "wide_resnet", "kwargs": ub_flags.wide_resnet_kwargs(config, data)}


DETERMINISTIC = method.Method("deterministic", model_spec=model_spec, method_flags=ub_flags.WIDE_RESNET_FLAGS,
                              validate=ub_flags.wide_resnet_errors, ood_scores=method.SOFTMAX_OOD_SCORES)

if __name__ == "__main__":
    app.run(lambda argv: experiment.run_from_flags(FLAGS, DETERMINISTIC))
