r"""Heteroscedastic Wide ResNet (Collier et al. 2021, "Correlated input-dependent label noise
in large-scale image classification") on CIFAR-10/100.

The deterministic WRN whose output layer puts input-dependent Gaussian noise on the logits,
with a low-rank-plus-diagonal covariance, so the network can model label noise that is
correlated across classes. The predictive probability is the softmax of the noisy logits
divided by a temperature, averaged over Monte-Carlo samples in training and at test time.
The head returns the log of that probability, so the usual cross-entropy from logits and the
one-pass prediction apply unchanged. Reference defaults: 6 factors, temperature 1.3,
10,000 samples, base LR 0.1, L2 2e-4, 200 epochs, decays at 60/120/160.
Differences from the reference: its total batch is 512, here 128 as in the other scripts
(the LR scales with it), and probabilities are not clipped at 1e-5 before the log. As in
the reference, the noise draws are shared across a batch.

  python baselines/cifar/heteroscedastic.py --dataset=cifar100 --data_dir=/work/data \
      --output_dir=/tmp/wrn28-10-het --depth=28 --width=10 --batch_size=512
"""
from absl import app, flags

from uncertainty_baselines.training import experiment, method
from uncertainty_baselines.training import flags as ub_flags

ub_flags.define_image_flags()
ub_flags.define_wide_resnet_flags()
flags.DEFINE_integer("num_factors", 6, "Rank of the low-rank part of the logit noise covariance, >= 0.")
flags.DEFINE_float("temperature", 1.3, "Softmax temperature of the noisy logits, > 0.")
flags.DEFINE_integer("num_mc_samples", 10_000, "Monte-Carlo samples of the noisy softmax, >= 1.")
FLAGS = flags.FLAGS
HETEROSCEDASTIC_FLAGS = ("num_factors", "temperature", "num_mc_samples")


def validate(config) -> list[str]:
    errors = (ub_flags.wide_resnet_errors(config) + ub_flags.positive_errors(config, "temperature")
              + ub_flags.at_least_one_errors(config, "num_mc_samples"))
    if config.num_factors < 0:
        errors.append(f"--num_factors must be >= 0 (0: diagonal noise only), got {config.num_factors}")
    return errors


def model_spec(config, data) -> dict:
    return {"name": "wide_resnet_heteroscedastic", "kwargs": {
        **ub_flags.wide_resnet_kwargs(config, data), "num_factors": config.num_factors,
        "temperature": config.temperature, "num_mc_samples": config.num_mc_samples}}


HETEROSCEDASTIC = method.Method("heteroscedastic", model_spec=model_spec, validate=validate,
                                method_flags=(*ub_flags.WIDE_RESNET_FLAGS, *HETEROSCEDASTIC_FLAGS))

if __name__ == "__main__":
    app.run(lambda argv: experiment.run_from_flags(FLAGS, HETEROSCEDASTIC))
