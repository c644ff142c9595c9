r"""MC dropout (Gal & Ghahramani 2016) on the UCI regression benchmarks, with the paper's
protocol.

Model: dropout on the inputs and the hidden layer (one hidden layer of ReLU units, 50;
100 for protein), a single output, trained on the squared error of standardised targets
plus weight decay lambda = l^2 (1 - p) / (2 N tau) on the kernels (lengthscale l = 1e-2,
N training rows), with Adam. Dropout stays active at test time.

Protocol: the dropout rate p and the model precision tau are chosen per split on a
validation carve-out (the last ``grid_validation_percent`` of the training rows) from the
grids in the data folder (``dropout_rates.txt`` x ``tau_values.txt``) by validation
log-likelihood; the chosen pair is then retrained on the whole training split and scored
on test. Test log-likelihood = logsumexp_t log N(y; mu_t, 1/tau) - log T over T
stochastic passes, in original units (tau is in original units, as in the paper's code);
RMSE of the MC mean. Every split x grid point trains as one stacked model.

  python baselines/uci/dropout.py --dataset=uci_boston_housing --split=all \
      --data_dir=../shared/data --output_dir=/tmp/uci_dropout
"""
import itertools
import math
import os
import sys
import time

import numpy as np
import tensorflow as tf
from absl import app, flags, logging
from scipy import special

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import uci_utils  # noqa: E402  (the UCI baselines' shared helpers, beside this script)

from uncertainty_baselines.datasets import uci  # noqa: E402
from uncertainty_baselines.models.mlp import mlp  # noqa: E402
from uncertainty_baselines.training import output_dir as output_dir_lib  # noqa: E402

uci_utils.define_common_flags()
flags.DEFINE_integer("epochs", 0, "Training epochs; 0 = 10 x the dataset's n_epochs.txt (the "
                     "paper's 40 epochs at batch 128 underfit on the small sets: on Boston's "
                     "validation carve-out, validation LL -3.06 at 40 epochs vs -2.61 at 400).")
flags.DEFINE_integer("batch_size", 128, "Batch size (per model), as in the paper's code.")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
flags.DEFINE_float("lengthscale", 1e-2, "Prior lengthscale l in the weight decay.")
flags.DEFINE_float("grid_validation_percent", 0.2, "Carve-out of train for the grid search.")
flags.DEFINE_integer("num_samples", 1000, "MC dropout samples T at test time.")
flags.DEFINE_integer("num_samples_validation", 100, "MC samples for the grid search.")
FLAGS = flags.FLAGS


def weight_decay(rates, taus, num_train: int) -> np.ndarray:
    """Gal & Ghahramani's lambda = l^2 (1 - p) / (2 N tau), one per member."""
    return (FLAGS.lengthscale ** 2 * (1 - np.asarray(rates))
            / (2.0 * num_train * np.asarray(taus))).astype(np.float32)


def train_members(x, y, member_split, rates, taus, seed):
    """Trains one stacked dropout MLP, member m with rate[m] and tau[m] on split member_split[m]."""
    model = mlp(x.shape[-1], 1, hidden_units=(FLAGS.hidden_units or SETTINGS.n_hidden,),
                num_members=len(member_split), dropout_rate=list(rates), seed=seed)
    decay = tf.constant(weight_decay(rates, taus, x.shape[1]))
    uci_utils.train(model, x, y, member_split, epochs=FLAGS.epochs or 10 * SETTINGS.n_epochs,
                    batch_size=FLAGS.batch_size, learning_rate=FLAGS.learning_rate,
                    loss_fn=uci_utils.squared_error_loss, seed=seed,
                    penalty_fn=lambda: decay * uci_utils.l2_per_member(model))
    return model


def mc_log_likelihood(model, x, labels, member_split, taus, num_samples):
    """Mean over rows of log (1/T) sum_t N(y; mu_t, 1/tau) per member, streamed over draws.

    ``labels`` [S, N] and the model's outputs are mapped to original units by the caller
    through ``scale`` / ``shift`` folded into labels: here both are already original units.
    """
    taus = np.asarray(taus)[:, None]
    total = np.full((len(member_split), x.shape[1]), -np.inf)
    for chunk in uci_utils.predict(model, x, member_split, num_samples, rows_independent=True):
        mu = chunk[..., 0] * Y_STD[member_split, None] + Y_MEAN[member_split, None]
        log_pdf = (-0.5 * taus * (labels[member_split] - mu) ** 2
                   + 0.5 * np.log(taus) - 0.5 * math.log(2 * math.pi))
        total = np.logaddexp(total, special.logsumexp(log_pdf, axis=0))
    return (total - math.log(num_samples)).mean(axis=1)


def main(argv):
    del argv
    global SETTINGS, Y_MEAN, Y_STD
    uci_utils.require_tensorflow_backend()
    start = time.time()
    SETTINGS = uci.read_settings(FLAGS.dataset, FLAGS.data_dir)
    split_indices = uci_utils.parse_splits(FLAGS.split, SETTINGS.n_splits)
    output_dir_lib.prepare_output_dir(FLAGS.output_dir, uci_utils.run_flags(),
                                      overwrite=FLAGS.overwrite,
                                      ignore=("output_dir", "overwrite"))
    splits = uci_utils.load(split_indices)
    Y_MEAN = np.array([s.y_mean for s in splits])
    Y_STD = np.array([s.y_std for s in splits])
    x_train, y_train = uci_utils.stack(splits, "x_train"), uci_utils.stack(splits, "y_train")
    num_splits = len(splits)

    # 1. Grid search on the carve-out: every split x (rate, tau) is one member.
    grid = list(itertools.product(SETTINGS.dropout_rates, SETTINGS.tau_values))
    cut = x_train.shape[1] - int(FLAGS.grid_validation_percent * x_train.shape[1])
    member_split = np.repeat(np.arange(num_splits), len(grid))
    rates = [p for _ in range(num_splits) for p, _ in grid]
    taus = [t for _ in range(num_splits) for _, t in grid]
    model = train_members(x_train[:, :cut], y_train[:, :cut], member_split, rates, taus,
                          FLAGS.seed)
    y_validation = y_train[:, cut:] * Y_STD[:, None] + Y_MEAN[:, None]
    validation_ll = mc_log_likelihood(model, x_train[:, cut:], y_validation, member_split, taus,
                                      FLAGS.num_samples_validation).reshape(num_splits, len(grid))
    chosen = [grid[i] for i in validation_ll.argmax(axis=1)]
    logging.info("chosen (dropout rate, tau) per split: %s", chosen)

    # 2. Retrain each split's chosen pair on the whole training split; score it.
    best_rates, best_taus = [p for p, _ in chosen], [t for _, t in chosen]
    member_split = np.arange(num_splits)
    model = train_members(x_train, y_train, member_split, best_rates, best_taus, FLAGS.seed + 1)
    x_eval, labels = uci_utils.evaluation_data(splits)
    samples = np.concatenate(list(uci_utils.predict(model, x_eval, member_split,
                                                    FLAGS.num_samples, rows_independent=True)))
    per_split = []
    for m, (s, label) in enumerate(zip(splits, labels)):
        mean = samples[:, m, :, 0] * s.y_std + s.y_mean  # [T, N]
        std = np.full_like(mean, best_taus[m] ** -0.5)
        per_split.append(uci_utils.split_metrics(mean, std, label))
    uci_utils.finish(FLAGS.output_dir, per_split, split_indices, seed=FLAGS.seed,
                     start_time=start,
                     model_kwargs=dict(input_dim=x_train.shape[-1], num_outputs=1,
                                       hidden_units=(FLAGS.hidden_units or SETTINGS.n_hidden,),
                                       num_members=num_splits, dropout_rate=best_rates,
                                       seed=FLAGS.seed + 1),
                     extra={"method": "dropout", "chosen_dropout_rate": best_rates,
                            "chosen_tau": best_taus,
                            "grid_validation_log_likelihood": validation_ll.tolist(),
                            "grid": grid})


if __name__ == "__main__":
    app.run(main)
