r"""BatchEnsemble Wide ResNet (Wen, Tran & Ba 2020) on CIFAR-10/100.

M members share every kernel and differ by rank-1 fast weights (r, s) and biases: the
model tiles each batch M times inside, so every member trains on every example and the
loss is the members' mean cross-entropy; the prediction is the mean of the members'
softmax. Reference defaults: M = 4, fast weights drawn from N(1, 0.5^2) (the reference
script's --random_sign_init=-0.5, which BASELINES.md summarises as random signs;
random signs, +1 with probability p, are --random_sign_init=p), the fast weights trained
at half the learning rate, L2 3e-4, 250 epochs, decays at the reference's 80/160/180
"of 200" rescaled to 250 epochs (100/200/225). Deviation: the half rate applies to the fast
weights alone; the reference CIFAR script also gives it to the head's member biases (every
variable that is neither a kernel nor batch norm).

  python baselines/cifar/batchensemble.py --dataset=cifar10 --data_dir=/work/data \
      --output_dir=/tmp/wrn28-10-batchensemble --depth=28 --width=10 --batch_size=512
"""
from absl import app, flags

from uncertainty_baselines.training import experiment, method, method_flags
from uncertainty_baselines.training import flags as ub_flags

ub_flags.define_image_flags(train_epochs=250, l2=3e-4, lr_decay_epochs=(0.4, 0.8, 0.9))
ub_flags.define_wide_resnet_flags()
method_flags.define_batchensemble_flags()
FLAGS = flags.FLAGS


def validate(config) -> list[str]:
    return ub_flags.wide_resnet_errors(config) + method_flags.batchensemble_errors(config)


def model_spec(config, data) -> dict:
    return {"name": "wide_resnet_batchensemble",
            "kwargs": {**ub_flags.wide_resnet_kwargs(config, data), **method_flags.batchensemble_kwargs(config)}}


def batchensemble() -> method.Method:
    return method.Method(
        "batchensemble", model_spec=model_spec, validate=validate,
        learning_rate_scales=method_flags.fast_weight_scales(FLAGS.fast_weight_lr_multiplier),
        method_flags=(*ub_flags.WIDE_RESNET_FLAGS, *method_flags.BATCHENSEMBLE_FLAGS),
        ood_scores=("msp", "entropy", "mutual_information"))


if __name__ == "__main__":
    app.run(lambda argv: experiment.run_from_flags(FLAGS, batchensemble()))
