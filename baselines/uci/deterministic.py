r"""Deterministic Gaussian MLP on the UCI regression benchmarks.

One hidden layer of ReLU units (50; 100 for protein) with a mean and softplus-scale
output (``ub.models.get("mlp_gaussian")``), trained on the Gaussian negative
log-likelihood of standardised targets with Adam; the number of epochs is chosen on a
validation carve-out of the training split (``uci_protocol.fit_gaussian_members``), then
the model is retrained on all of it. Every requested split trains at once as one stacked
model (``num_members`` = number of splits). Test log-likelihood, RMSE, CRPS and 95%
interval coverage are reported in the original target units, as mean and standard error
over splits.

  python baselines/uci/deterministic.py --dataset=uci_boston_housing --split=all \
      --data_dir=../shared/data --output_dir=/tmp/uci_det
"""
from absl import app, flags

from uncertainty_baselines.models.mlp import mlp_gaussian
from uncertainty_baselines.training import stacked, uci_flags, uci_protocol

uci_flags.define_uci_flags()
flags.DEFINE_integer("batch_size", 32, "Batch size (per split).")
uci_flags.define_learning_rate_flag((1e-3,))
FLAGS = flags.FLAGS


def main(argv):
    del argv
    job = uci_flags.start(uci_flags.flag_values(FLAGS))
    model_kwargs = dict(input_dim=job.splits[0].x_train.shape[-1], num_outputs=1,
                        hidden_units=job.hidden_units, num_members=len(job.splits),
                        seed=FLAGS.seed)
    per_split, facts, model = uci_protocol.fit_gaussian_members(
        lambda: mlp_gaussian(**model_kwargs), job.splits, job.selection, members_per_split=1,
        part=job.part, batch_size=FLAGS.batch_size, loss_fn=stacked.gaussian_nll_loss,
        seed=FLAGS.seed)
    job.finish(per_split, model, {"name": "mlp_gaussian", "kwargs": model_kwargs},
               extra={"method": "deterministic", **facts})


if __name__ == "__main__":
    app.run(main)
