r"""SNGP BERT (Liu et al. 2020, "Simple and principled uncertainty estimation with
deterministic deep learning via distance awareness") on CLINC150 intent detection.

The deterministic BERT made distance aware at its top: the pooler is spectrally
normalised (operator norm at most --spec_norm_bound, initialised from the pretrained
pooler) and the output layer is a random-feature Gaussian process on the layer-normalised
pooled features. Training uses the GP's logits; the prediction is one pass of mean-field
logits, logit / sqrt(1 + lambda var). OOD scores: 1 - max probability and Dempster-Shafer.
Reference defaults: bound 0.95, 1 power iteration, 2,048 unscaled i.i.d. Gaussian random
features of standard deviation 0.05 on the layer-normalised pooled features (length-scale
20: its kernel-scale flag, 2, is unused when inputs are normalised), mean-field lambda 0.1,
learning rate 5e-5, 40 epochs. Length-scale sqrt 2 makes the kernel ~0 between any two
queries, so the GP cannot generalise (experimental/gp_length_scale/README.md).

Posterior precision: here exact over each epoch, summed over its training batches and
reset to ridge * I at the start of the next (`on_epoch_start`). The reference instead
keeps a discounted average (momentum 0.999, ridge 1e-3) of the per-example feature
products and never resets it; a sum over N examples is N times their average, so the
default ridge 15 = 1e-3 x the 15,000 training queries gives the same predictive variance
for the full training set. --gp_covariance_momentum in (0, 1) gives the reference's form.

  python baselines/clinc_intent/sngp.py --data_dir=/work/data \
      --output_dir=/tmp/clinc-sngp
"""

from absl import app, flags

from uncertainty_baselines.training import experiment, method, method_flags, text
from uncertainty_baselines.training import flags as ub_flags

text.define_text_flags(train_epochs=40, learning_rate=5e-5)
flags.DEFINE_float("spec_norm_bound", 0.95, "Bound on the pooler's operator norm, > 0.")
flags.DEFINE_integer("spec_norm_iterations", 1, "Power iterations per training step, >= 1.")
flags.DEFINE_integer("num_inducing", 2048, "Random features of the GP output layer, >= 1.")
flags.DEFINE_float("gp_length_scale", 20.0, "RBF length-scale of the GP on its layer-normalised inputs, > 0 "
                   "(the reference's random-feature standard deviation 0.05).")
flags.DEFINE_float("gp_ridge_penalty", 15.0, "Ridge penalty of the GP's posterior precision, > 0.")
flags.DEFINE_float("gp_covariance_momentum", -1.0, "<= 0: exact precision over each epoch (reset at its "
                   "start); in (0, 1): discounted moving average, never reset (the reference: 0.999).")
flags.DEFINE_float("gp_mean_field_factor", 0.1, "lambda of the mean-field logits; < 0: the posterior mode.")
FLAGS = flags.FLAGS
SNGP_FLAGS = ("spec_norm_bound", "spec_norm_iterations", "num_inducing", "gp_length_scale", "gp_ridge_penalty",
              "gp_covariance_momentum", "gp_mean_field_factor")


def validate(config) -> list[str]:
    errors = (ub_flags.positive_errors(config, "spec_norm_bound", "gp_length_scale", "gp_ridge_penalty")
              + ub_flags.at_least_one_errors(config, "spec_norm_iterations", "num_inducing"))
    return errors + method_flags.gp_covariance_momentum_errors(config)


def model_spec(config, data) -> dict:
    return {"name": "bert_sngp", "kwargs": {
        **text.bert_kwargs(config, data), **{name: getattr(config, name) for name in SNGP_FLAGS}}}


def sngp() -> method.Method:
    return method.Method(
        "sngp", model_spec=model_spec, validate=validate, method_flags=SNGP_FLAGS,
        on_epoch_start=method_flags.sngp_epoch_hook(FLAGS),
        ood_scores=("msp", "dempster_shafer"))


if __name__ == "__main__":
    app.run(lambda argv: experiment.run_from_flags(FLAGS, sngp(), task=text.TEXT))
