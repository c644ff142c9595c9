r"""Mean-field variational inference (Bayes by Backprop, Blundell et al. 2015) on the UCI
regression benchmarks.

Every weight of the Gaussian MLP (mean and softplus-scale outputs) has a factorised
Gaussian posterior (``ub.layers.DenseVariational``), sampled by reparameterisation; the
loss is the negative ELBO per training example, Gaussian NLL + KL(q || N(0,
prior_stddev^2)) / N. The predictive is the mixture of the Gaussians of
``num_samples`` weight draws; log-likelihood, RMSE of its mean, CRPS and 95% interval
coverage in original units. All splits train as one stacked model.

  python baselines/uci/variational_inference.py --dataset=uci_boston_housing --split=all \
      --data_dir=../shared/data --output_dir=/tmp/uci_vi
"""
import os
import sys
import time

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import uci_utils  # noqa: E402  (the UCI baselines' shared helpers, beside this script)

from uncertainty_baselines.datasets import uci  # noqa: E402
from uncertainty_baselines.models.mlp import mlp  # noqa: E402
from uncertainty_baselines.training import output_dir as output_dir_lib  # noqa: E402

uci_utils.define_common_flags()
flags.DEFINE_integer("epochs", 100, "Training epochs.")
flags.DEFINE_integer("batch_size", 32, "Batch size (per split).")
flags.DEFINE_float("learning_rate", 1e-2, "Adam learning rate.")
flags.DEFINE_float("prior_stddev", 1.0, "Standard deviation of the Gaussian weight prior.")
flags.DEFINE_integer("num_samples", 100, "Weight draws averaged in the predictive.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    uci_utils.require_tensorflow_backend()
    start = time.time()
    settings = uci.read_settings(FLAGS.dataset, FLAGS.data_dir)
    split_indices = uci_utils.parse_splits(FLAGS.split, settings.n_splits)
    output_dir_lib.prepare_output_dir(FLAGS.output_dir, uci_utils.run_flags(),
                                      overwrite=FLAGS.overwrite,
                                      ignore=("output_dir", "overwrite"))
    splits = uci_utils.load(split_indices)
    x_train, y_train = uci_utils.stack(splits, "x_train"), uci_utils.stack(splits, "y_train")
    member_split = list(range(len(splits)))
    model_kwargs = dict(input_dim=x_train.shape[-1], num_outputs=1,
                        hidden_units=(FLAGS.hidden_units or settings.n_hidden,),
                        num_members=len(splits), seed=FLAGS.seed, gaussian_head=True,
                        variational=True, prior_stddev=FLAGS.prior_stddev)
    model = mlp(**model_kwargs)
    num_train = x_train.shape[1]
    uci_utils.train(model, x_train, y_train, member_split, epochs=FLAGS.epochs,
                    batch_size=FLAGS.batch_size, learning_rate=FLAGS.learning_rate,
                    loss_fn=uci_utils.gaussian_nll_loss, seed=FLAGS.seed,
                    penalty_fn=lambda: uci_utils.kl_per_member(model) / num_train)
    x_eval, labels = uci_utils.evaluation_data(splits)
    samples = np.concatenate(list(uci_utils.predict(model, x_eval, member_split,
                                                    FLAGS.num_samples)))  # [T, S, N, 2]
    per_split = [uci_utils.split_metrics(samples[:, m, :, 0] * s.y_std + s.y_mean,
                                         samples[:, m, :, 1] * s.y_std, label)
                 for m, (s, label) in enumerate(zip(splits, labels))]
    uci_utils.finish(FLAGS.output_dir, per_split, split_indices, seed=FLAGS.seed,
                     start_time=start, model_kwargs=model_kwargs,
                     extra={"method": "variational_inference"})


if __name__ == "__main__":
    app.run(main)
