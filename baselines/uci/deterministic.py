r"""Deterministic Gaussian MLP on the UCI regression benchmarks.

One hidden layer of ReLU units (50; 100 for protein) with a mean and softplus-scale
output, trained on the Gaussian negative log-likelihood of standardised targets with
Adam; the number of epochs is chosen on a validation carve-out of the training split
(``uci_utils.fit_gaussian_members``), then the model is retrained on all of it. Every requested split trains at once as one stacked model (``ub.models.mlp`` with
``num_members`` = number of splits). Test log-likelihood, RMSE, CRPS and 95% interval
coverage are reported in the original target units, as mean and standard error over
splits.

  python baselines/uci/deterministic.py --dataset=uci_boston_housing --split=all \
      --data_dir=../shared/data --output_dir=/tmp/uci_det
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
uci_utils.define_learning_rate_flag((1e-3,))
FLAGS = flags.FLAGS


def main(argv):
    del argv
    settings, split_indices, splits = uci_utils.start_run()
    model_kwargs = dict(input_dim=splits[0].x_train.shape[-1], num_outputs=1,
                        hidden_units=(FLAGS.hidden_units or settings.n_hidden,),
                        num_members=len(splits), seed=FLAGS.seed, gaussian_head=True)
    per_split, facts, model = uci_utils.fit_gaussian_members(
        lambda: mlp(**model_kwargs), splits, members_per_split=1,
        batch_size=FLAGS.batch_size, loss_fn=stacked.gaussian_nll_loss, seed=FLAGS.seed)
    uci_utils.finish(FLAGS.output_dir, per_split, split_indices, model=model, seed=FLAGS.seed,
                     model_kwargs=model_kwargs,
                     extra={"method": "deterministic", **facts})


if __name__ == "__main__":
    app.run(main)
