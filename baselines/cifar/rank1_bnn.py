r"""Rank-1 Bayesian neural net Wide ResNet (Dusenberry et al. 2020) on CIFAR-10/100.

M members share every kernel and differ by rank-1 multiplicative factors alpha, gamma
with learned Gaussian (or Cauchy) posteriors, drawn per example in training and at test
time. The model tiles each batch M times inside; the loss is the members' mean
cross-entropy, L2, and the factors' KL divided by the number of training examples,
annealed linearly to full weight over --kl_annealing_epochs (step t weighs
min(1, (t + 1) / (steps per epoch x epochs)), as the reference). The prediction is the
mean of the members' softmax. Reference defaults: M = 4, factor locations random signs,
stddev init sqrt(p / (1 - p)) with the reference's dropout-like p = 1e-3, prior N(1, 0.1^2),
KL annealed over 200 epochs, L2 1e-4 (kernels, biases, batch norm), 250 epochs, LR decays
at the reference's 80/160/180 "of 200" rescaled to 250 epochs (100/200/225).
Evaluation draws one sample per member (the reference's default; no flag for more).
Deviations: train/kl reports the annealed term that enters the loss, not the raw KL / N;
the factors' initial scales are all exactly that stddev, where the reference draws their
softplus-inverse from a truncated normal of stddev 0.1 around it.

  python baselines/cifar/rank1_bnn.py --dataset=cifar10 --data_dir=/work/data \
      --output_dir=/tmp/wrn28-10-rank1 --depth=28 --width=10 --batch_size=128
"""
from absl import app, flags

import uncertainty_baselines as ub
from uncertainty_baselines.layers.rank1 import DISTRIBUTIONS, REFERENCE_INIT_STDDEV
from uncertainty_baselines.training import experiment, method, method_flags
from uncertainty_baselines.training import flags as ub_flags

ub_flags.define_image_flags(train_epochs=250, l2=1e-4, lr_decay_epochs=(0.4, 0.8, 0.9))
ub_flags.define_wide_resnet_flags()
flags.DEFINE_integer("ensemble_size", 4, "Members M.")
flags.DEFINE_string("distribution", "normal", f"Family of the factors' posteriors and prior: {DISTRIBUTIONS}.")
flags.DEFINE_float("prior_mean", 1.0, "Location of the factors' prior.")
flags.DEFINE_float("prior_stddev", 0.1, "Scale of the factors' prior.")
flags.DEFINE_float("init_stddev", REFERENCE_INIT_STDDEV, "Initial scale of the factors' posteriors.")
flags.DEFINE_float("kl_annealing_epochs", 200, "Epochs over which the KL weight grows linearly to 1 (0: 1 at once).")
method_flags.define_random_sign_flag("factor's location", 0.5)
FLAGS = flags.FLAGS
METHOD_FLAGS = ("ensemble_size", "distribution", "prior_mean", "prior_stddev", "init_stddev", "kl_annealing_epochs",
                "random_sign_init")


def validate(config) -> list[str]:
    errors = (ub_flags.wide_resnet_errors(config) + ub_flags.at_least_one_errors(config, "ensemble_size")
              + ub_flags.positive_errors(config, "prior_stddev", "init_stddev") + method_flags.random_sign_errors(config))
    if config.distribution not in DISTRIBUTIONS:
        errors.append(f"--distribution must be one of {DISTRIBUTIONS}, got {config.distribution!r}")
    if config.kl_annealing_epochs < 0:
        errors.append(f"--kl_annealing_epochs must be >= 0, got {config.kl_annealing_epochs}")
    return errors


def model_spec(config, data) -> dict:
    return {"name": "wide_resnet_rank1", "kwargs": {
        **ub_flags.wide_resnet_kwargs(config, data), "ensemble_size": config.ensemble_size,
        "distribution": config.distribution, "prior_mean": config.prior_mean,
        "prior_stddev": config.prior_stddev, "init_stddev": config.init_stddev,
        "random_sign_init": config.random_sign_init}}


def rank1_bnn() -> method.Method:
    return method.Method(
        "rank1_bnn", model_spec=model_spec, validate=validate,
        extra_losses=method.annealed_kl(ub.layers.rank1_kl, FLAGS.kl_annealing_epochs),
        method_flags=(*ub_flags.WIDE_RESNET_FLAGS, *METHOD_FLAGS),
        ood_scores=("msp", "entropy", "mutual_information"))


if __name__ == "__main__":
    app.run(lambda argv: experiment.run_from_flags(FLAGS, rank1_bnn()))
