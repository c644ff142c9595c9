r"""Deep ensembles (Lakshminarayanan et al. 2017) on the UCI regression benchmarks.

``num_members`` Gaussian MLPs (mean and softplus scale), each from its own random
initialisation and data order, trained on the Gaussian NLL, optionally with adversarial
training: the fast gradient sign method with eps = ``adversarial_eps`` x the range of each
(standardised) input feature, adding the loss at the perturbed inputs. The predictive is
the equal-weight mixture of the members' Gaussians; its log-likelihood, RMSE of the mixture
mean, CRPS and 95% interval coverage are reported in original units. The number of
epochs is chosen on a validation carve-out of each training split, then the ensemble is
retrained on all of it. All splits x members train as one stacked model.

  python baselines/uci/ensemble.py --dataset=uci_boston_housing --split=all \
      --data_dir=../shared/data --output_dir=/tmp/uci_ensemble
"""
import os
import sys

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import uci_utils  # noqa: E402  (the UCI baselines' shared helpers, beside this script)

from uncertainty_baselines.models.mlp import mlp  # noqa: E402
from uncertainty_baselines.training import stacked  # noqa: E402

uci_utils.define_common_flags()
flags.DEFINE_integer("num_members", 5, "Ensemble size.")
flags.DEFINE_integer("batch_size", 100, "Batch size (per member).")
uci_utils.define_learning_rate_flag((1e-2, 1e-3))
flags.DEFINE_bool("adversarial", False, "Adversarial training with the fast gradient sign method.")
flags.DEFINE_float("adversarial_eps", 0.01, "FGSM step as a fraction of each input's range.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    settings, split_indices, splits = uci_utils.start_run()
    x_train = uci_utils.stack(splits, "x_train")
    eps = None
    if FLAGS.adversarial:  # carve-out rows are part of the range; both are training rows
        ranges = x_train.max(axis=1) - x_train.min(axis=1)  # [S, D], standardised units
        eps = FLAGS.adversarial_eps * np.repeat(ranges, FLAGS.num_members, axis=0)
    model_kwargs = dict(input_dim=x_train.shape[-1], num_outputs=1,
                        hidden_units=(FLAGS.hidden_units or settings.n_hidden,),
                        num_members=len(splits) * FLAGS.num_members, seed=FLAGS.seed,
                        gaussian_head=True)
    per_split, facts, model = uci_utils.fit_gaussian_members(
        lambda: mlp(**model_kwargs), splits, members_per_split=FLAGS.num_members,
        batch_size=FLAGS.batch_size, loss_fn=stacked.gaussian_nll_loss, seed=FLAGS.seed,
        adversarial_eps=eps)
    uci_utils.finish(FLAGS.output_dir, per_split, split_indices, model=model, seed=FLAGS.seed,
                     model_kwargs=model_kwargs,
                     extra={"method": "ensemble", **facts})


if __name__ == "__main__":
    app.run(main)
