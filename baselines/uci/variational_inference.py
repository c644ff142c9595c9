r"""Mean-field variational inference (Bayes by Backprop, Blundell et al. 2015) on the UCI
regression benchmarks.

Every weight of the Gaussian MLP (mean and softplus-scale outputs) has a factorised
Gaussian posterior (``ub.layers.DenseVariational``), sampled by reparameterisation; the
loss is the negative ELBO per training example, Gaussian NLL + KL(q || N(0,
prior_stddev^2)) / N. The predictive is the mixture of the Gaussians of
``num_samples`` weight draws; log-likelihood, RMSE of its mean, CRPS and 95% interval
coverage in original units. The number of epochs is chosen on a validation carve-out of
each training split, then the model is retrained on all of it. All splits train as one
stacked model.

  python baselines/uci/variational_inference.py --dataset=uci_boston_housing --split=all \
      --data_dir=../shared/data --output_dir=/tmp/uci_vi
"""
import os
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import uci_utils  # noqa: E402  (the UCI baselines' shared helpers, beside this script)

from uncertainty_baselines.models.mlp import mlp  # noqa: E402
from uncertainty_baselines.training import stacked  # noqa: E402

uci_utils.define_common_flags()
flags.DEFINE_integer("batch_size", 32, "Batch size (per split).")
uci_utils.define_learning_rate_flag((1e-2, 1e-3))
flags.DEFINE_float("prior_stddev", 1.0, "Standard deviation of the Gaussian weight prior.")
flags.DEFINE_integer("num_samples", 100, "Weight draws averaged in the predictive.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    settings, split_indices, splits = uci_utils.start_run()
    model_kwargs = dict(input_dim=splits[0].x_train.shape[-1], num_outputs=1,
                        hidden_units=(FLAGS.hidden_units or settings.n_hidden,),
                        num_members=len(splits), seed=FLAGS.seed, gaussian_head=True,
                        variational=True, prior_stddev=FLAGS.prior_stddev)
    per_split, facts, model = uci_utils.fit_gaussian_members(
        lambda: mlp(**model_kwargs), splits, members_per_split=1, num_samples=FLAGS.num_samples,
        batch_size=FLAGS.batch_size, loss_fn=stacked.gaussian_nll_loss, seed=FLAGS.seed,
        penalty_fn=lambda model, n: stacked.kl_per_member(model) / n)  # negative ELBO / N
    uci_utils.finish(FLAGS.output_dir, per_split, split_indices, model=model, seed=FLAGS.seed,
                     model_kwargs=model_kwargs,
                     extra={"method": "variational_inference", **facts})


if __name__ == "__main__":
    app.run(main)
