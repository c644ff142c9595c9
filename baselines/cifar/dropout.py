r"""Monte Carlo dropout Wide ResNet (Gal & Ghahramani 2016) on CIFAR-10/100.

The deterministic WRN with dropout on every residual branch (between the two convs of
each block) that stays on at test time: the prediction averages the softmax of
`--num_dropout_samples` stochastic passes, and the passes' spread gives the mutual
information OOD score. Reference defaults: rate 0.1, base LR 0.05, L2 3e-4. Deviation
from the reference script: its default (`residual_dropout`) drops once per block right
after the first conv, before the second batch norm; this one drops once per block after
the second batch norm and ReLU, before the second conv, where the WRN paper puts dropout
(`--filterwise_dropout` drops whole feature maps instead of elements). The reference
evaluates 1 pass by default and reports 30; `--num_dropout_samples` defaults to 5.

  python baselines/cifar/dropout.py --dataset=cifar10 --data_dir=/work/data \
      --output_dir=/tmp/wrn28-10-dropout --depth=28 --width=10 --batch_size=512
"""
from absl import app, flags

from uncertainty_baselines.training import experiment, method, method_flags
from uncertainty_baselines.training import flags as ub_flags

ub_flags.define_image_flags(base_learning_rate=0.05, l2=3e-4)
ub_flags.define_wide_resnet_flags()
method_flags.define_dropout_flags()
FLAGS = flags.FLAGS


def validate(config) -> list[str]:
    return ub_flags.wide_resnet_errors(config) + method_flags.dropout_errors(config)


def model_spec(config, data) -> dict:
    return {"name": "wide_resnet_mc_dropout",
            "kwargs": {**ub_flags.wide_resnet_kwargs(config, data), **method_flags.dropout_kwargs(config)}}


def mc_dropout() -> method.Method:
    return method.Method(
        "mc_dropout", model_spec=model_spec, validate=validate,
        predict=method.stochastic_passes(FLAGS.num_dropout_samples),
        method_flags=(*ub_flags.WIDE_RESNET_FLAGS, *method_flags.DROPOUT_FLAGS),
        ood_scores=("msp", "entropy", "mutual_information"))


if __name__ == "__main__":
    app.run(lambda argv: experiment.run_from_flags(FLAGS, mc_dropout()))
