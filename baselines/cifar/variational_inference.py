r"""Variational inference Wide ResNet: mean-field Gaussian weights sampled by Flipout
(Blundell et al. 2015; Wen et al. 2018) on CIFAR-10/100.

Every conv and the head have a Gaussian posterior per kernel weight, sampled in training
and at test time; batch norm and the head's bias stay deterministic. The loss is the
cross-entropy, L2, and the KL / number of training examples, annealed linearly to full
weight over --kl_annealing_epochs (step t weighs min(1, (t + 1) / (steps per epoch x
epochs))). As the reference, the prior N(mu, prior_stddev^2) has its mean tied to the
posterior's (the KL penalises the stddevs only) and L2 reaches batch norm and the head's
bias, not the kernel means. --l2_kernel_means penalises the kernel means too; with
--l2_scope=kernels they are all it penalises, as for a plain network's kernels (without the
flag that scope leaves no L2 and is refused).
The prediction averages --num_eval_samples passes, run as one tiled pass (each copy gets
its own Flipout signs). Reference defaults: prior stddev 0.1, posterior stddev init 1e-3,
KL annealed over 200 epochs, L2 4e-4, 250 epochs, 5 samples at evaluation. Deviations: the
reference holds out 5% of the training set, samples once on the clean test set (5 times on
corrupted sets only) and jitters the initial rho; train/kl reports the annealed term.

  python baselines/cifar/variational_inference.py --dataset=cifar10 --data_dir=/work/data \
      --output_dir=/tmp/wrn28-10-vi --depth=28 --width=10 --batch_size=512
"""
import functools

from absl import app, flags

import uncertainty_baselines as ub
from uncertainty_baselines.training import experiment, method
from uncertainty_baselines.training import flags as ub_flags

ub_flags.define_image_flags(train_epochs=250, l2=4e-4)
ub_flags.define_wide_resnet_flags()
flags.DEFINE_float("prior_stddev", 0.1, "Stddev of the weights' prior (its mean tied to the posterior's).")
flags.DEFINE_float("init_stddev", 1e-3, "Initial stddev of the weights' posteriors.")
flags.DEFINE_float("kl_annealing_epochs", 200, "Epochs over which the KL weight grows linearly to 1 (0: 1 at once).")
flags.DEFINE_integer("num_eval_samples", 5, "Sampled forward passes averaged at evaluation.")
flags.DEFINE_bool("l2_kernel_means", False, "Also penalise the kernels' posterior means with --l2 (the "
                  "reference does not).")
FLAGS = flags.FLAGS
METHOD_FLAGS = ("prior_stddev", "init_stddev", "kl_annealing_epochs", "num_eval_samples", "l2_kernel_means")
# L2 groups of the kernels, whose means the reference leaves unpenalised.
KERNEL_L2_GROUPS = ("input_conv", "group_1_conv", "group_2_conv", "group_3_conv", "dense_kernel")


def validate(config) -> list[str]:
    errors = (ub_flags.wide_resnet_errors(config) + ub_flags.at_least_one_errors(config, "num_eval_samples")
              + ub_flags.positive_errors(config, "prior_stddev", "init_stddev"))
    if config.kl_annealing_epochs < 0:
        errors.append(f"--kl_annealing_epochs must be >= 0, got {config.kl_annealing_epochs}")
    if config.l2_scope == "kernels" and not config.l2_kernel_means:
        errors.append("--l2_scope=kernels would leave no L2 term: without --l2_kernel_means this method's L2 "
                      "never reaches the kernels")
    return errors


def model_spec(config, data) -> dict:
    kwargs = ub_flags.wide_resnet_kwargs(config, data)
    if not config.l2_kernel_means:
        kwargs["l2_overrides"] = {**kwargs.get("l2_overrides", {}), **{group: 0.0 for group in KERNEL_L2_GROUPS}}
    return {"name": "wide_resnet_variational", "kwargs": {
        **kwargs, "prior_stddev": config.prior_stddev, "init_stddev": config.init_stddev}}


def variational_inference() -> method.Method:
    return method.Method(
        "variational_inference", model_spec=model_spec, validate=validate,
        extra_losses=method.annealed_kl(functools.partial(ub.layers.flipout_kl, tied_mean=True),
                                        FLAGS.kl_annealing_epochs),
        predict=method.stochastic_passes(FLAGS.num_eval_samples),
        method_flags=(*ub_flags.WIDE_RESNET_FLAGS, *METHOD_FLAGS),
        ood_scores=("msp", "entropy", "mutual_information"))


if __name__ == "__main__":
    app.run(lambda argv: experiment.run_from_flags(FLAGS, variational_inference()))
