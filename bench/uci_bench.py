r"""Benchmark: Boston's 20 standard splits, deterministic Gaussian MLP, two ways, one run.

  plain:  a Python loop over splits, one Keras model per split, ``model.fit`` (40 epochs,
          batch 32, Adam 1e-3), ``model.predict``;
  ours:   every split in one stacked model (``mlp_gaussian(num_members=20)``) trained by
          ``uncertainty_baselines.training.stacked.train``: one XLA-compiled epoch loop.
Same architecture, loss, optimiser, epochs and batch size; data loading is excluded from
both timings (model building, compilation, training and prediction are included).
Prints wall times, the speed-up ratio, and test log-likelihood / RMSE (mean +- s.e. over
splits, original units). Run it alone on the machine:

  flock /tmp/ub_heavy.lock .venv/bin/python bench/uci_bench.py --data_dir=../shared/data
"""
import os
import time

import keras
from absl import app, flags, logging

from uncertainty_baselines.datasets import uci
from uncertainty_baselines.models.mlp import mlp_gaussian
from uncertainty_baselines.training import stacked
from uncertainty_baselines.training.uci_protocol import split_metrics, stack, summarise

flags.DEFINE_string("data_dir", None, "Folder holding uci/bostonHousing/ (default $UB_DATA_DIR).")
flags.DEFINE_integer("epochs", 40, "Training epochs (both ways).")
flags.DEFINE_integer("batch_size", 32, "Batch size (both ways).")
flags.DEFINE_integer("seed", 0, "Seed.")
FLAGS = flags.FLAGS
DATASET = "uci_boston_housing"


def _metrics(splits, means, stds):
    """Per-split metrics in original units from standardised means / stds [S, N]."""
    return [split_metrics((mu * s.y_std + s.y_mean)[None], (sd * s.y_std)[None],
                          s.y_test * s.y_std + s.y_mean)
            for s, mu, sd in zip(splits, means, stds)]


def plain_loop(splits):
    """One Keras model per split, trained with model.fit."""
    means, stds = [], []
    for k, split in enumerate(splits):
        model = mlp_gaussian(split.x_train.shape[1], 1, hidden_units=(50,), seed=FLAGS.seed + k)
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss=lambda y, out: stacked.gaussian_nll_loss(
                          keras.ops.reshape(y, (-1,)), out))
        model.fit(split.x_train, split.y_train, epochs=FLAGS.epochs,
                  batch_size=FLAGS.batch_size, verbose=0, shuffle=True)
        out = model.predict(split.x_test, verbose=0)
        means.append(out[:, 0])
        stds.append(out[:, 1])
    return _metrics(splits, means, stds)


def vectorised(splits):
    """All splits as members of one stacked model, one compiled epoch loop."""
    x = stack(splits, "x_train")
    members = list(range(len(splits)))
    model = mlp_gaussian(x.shape[-1], 1, hidden_units=(50,), num_members=len(splits),
                         seed=FLAGS.seed)
    stacked.train(model, x, stack(splits, "y_train"), members, epochs=FLAGS.epochs,
                  batch_size=FLAGS.batch_size, learning_rate=1e-3,
                  loss_fn=stacked.gaussian_nll_loss, seed=FLAGS.seed)
    out = next(stacked.predict(model, stack(splits, "x_test"), members))[0]
    return _metrics(splits, out[..., 0], out[..., 1])


def _line(name, seconds, per_split):
    s = summarise(per_split)
    return (f"{name:<28} {seconds:7.1f} s   LL {s['test/log_likelihood']:.2f} +- "
            f"{s['test/log_likelihood_se']:.2f}   RMSE {s['test/rmse']:.2f} +- "
            f"{s['test/rmse_se']:.2f}")


def main(argv):
    del argv
    stacked.require_tensorflow_backend()
    logging.set_verbosity(logging.ERROR)  # model.predict's per-model retracing warnings
    splits = uci.load_splits(DATASET, FLAGS.data_dir)
    timings = {}
    for name, fn in (("plain per-split Keras loop", plain_loop), ("ours (vectorised)", vectorised)):
        start = time.perf_counter()
        per_split = fn(splits)
        timings[name] = time.perf_counter() - start
        print(_line(name, timings[name], per_split), flush=True)
    plain, ours = timings.values()
    print(f"Boston, {len(splits)} splits, {FLAGS.epochs} epochs, batch {FLAGS.batch_size}, "
          f"{os.cpu_count()} CPU cores: speed-up {plain / ours:.1f}x")


if __name__ == "__main__":
    app.run(main)
