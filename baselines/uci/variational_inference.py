r"""Mean-field variational inference (Bayes by Backprop, Blundell et al. 2015) on the UCI
regression benchmarks.

Every weight of the Gaussian MLP (mean and softplus-scale outputs) has a factorised
Gaussian posterior (``ub.models.get("mlp_variational_gaussian")``, built from
``ub.layers.DenseVariational``), sampled by reparameterisation; the loss is the negative
ELBO per training example, Gaussian NLL + KL(q || N(0, prior_stddev^2)) / N. The
predictive is the mixture of the Gaussians of ``num_samples`` weight draws;
log-likelihood, RMSE of its mean, CRPS and 95% interval coverage in original units. The
number of epochs is chosen on a validation carve-out of each training split, then the
model is retrained on all of it. All splits train as one stacked model.

  python baselines/uci/variational_inference.py --dataset=uci_boston_housing --split=all \
      --data_dir=../shared/data --output_dir=/tmp/uci_vi
"""
from absl import app, flags

from uncertainty_baselines.models.mlp import mlp_variational_gaussian
from uncertainty_baselines.training import stacked, uci_flags, uci_protocol

uci_flags.define_uci_flags()
flags.DEFINE_integer("batch_size", 32, "Batch size (per split).")
uci_flags.define_learning_rate_flag((1e-2, 1e-3))
flags.DEFINE_float("prior_stddev", 1.0, "Standard deviation of the Gaussian weight prior.")
flags.DEFINE_integer("num_samples", 100, "Weight draws averaged in the predictive.")
FLAGS = flags.FLAGS


def negative_elbo_penalty(model, num_train: int):
    """KL(q || prior) per member over the training rows: with the mean NLL, the negative
    ELBO per example."""
    return stacked.kl_per_member(model) / num_train


def main(argv):
    del argv
    job = uci_flags.start(uci_flags.flag_values(FLAGS))
    model_kwargs = dict(input_dim=job.splits[0].x_train.shape[-1], num_outputs=1,
                        hidden_units=job.hidden_units, num_members=len(job.splits),
                        seed=FLAGS.seed, prior_stddev=FLAGS.prior_stddev)
    per_split, facts, model = uci_protocol.fit_gaussian_members(
        lambda: mlp_variational_gaussian(**model_kwargs), job.splits, job.selection,
        members_per_split=1, part=job.part, num_samples=FLAGS.num_samples,
        batch_size=FLAGS.batch_size, loss_fn=stacked.gaussian_nll_loss, seed=FLAGS.seed,
        penalty_fn=negative_elbo_penalty)
    job.finish(per_split, model, {"name": "mlp_variational_gaussian", "kwargs": model_kwargs},
               extra={"method": "variational_inference", **facts})


if __name__ == "__main__":
    app.run(main)
