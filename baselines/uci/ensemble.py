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
import numpy as np
from absl import app, flags

from uncertainty_baselines.models.mlp import mlp_gaussian
from uncertainty_baselines.training import stacked, uci_flags, uci_protocol

uci_flags.define_uci_flags()
flags.DEFINE_integer("num_members", 5, "Ensemble size.")
flags.DEFINE_integer("batch_size", 100, "Batch size (per member).")
uci_flags.define_learning_rate_flag((1e-2, 1e-3))
flags.DEFINE_bool("adversarial", False, "Adversarial training with the fast gradient sign method.")
flags.DEFINE_float("adversarial_eps", 0.01, "FGSM step as a fraction of each input's range.")
FLAGS = flags.FLAGS


def fgsm_steps(x_train: np.ndarray) -> np.ndarray:
    """[S * members, D] FGSM step of every member: --adversarial_eps x the range of each
    standardised feature over its split's training rows (carve-out included: both are
    training rows)."""
    ranges = x_train.max(axis=1) - x_train.min(axis=1)
    return FLAGS.adversarial_eps * np.repeat(ranges, FLAGS.num_members, axis=0)


def main(argv):
    del argv
    job = uci_flags.start(uci_flags.flag_values(FLAGS))
    x_train = uci_protocol.stack(job.splits, "x_train")
    model_kwargs = dict(input_dim=x_train.shape[-1], num_outputs=1,
                        hidden_units=job.hidden_units,
                        num_members=len(job.splits) * FLAGS.num_members, seed=FLAGS.seed)
    per_split, facts, model = uci_protocol.fit_gaussian_members(
        lambda: mlp_gaussian(**model_kwargs), job.splits, job.selection,
        members_per_split=FLAGS.num_members, part=job.part, batch_size=FLAGS.batch_size,
        loss_fn=stacked.gaussian_nll_loss, seed=FLAGS.seed,
        adversarial_eps=fgsm_steps(x_train) if FLAGS.adversarial else None)
    job.finish(per_split, model, {"name": "mlp_gaussian", "kwargs": model_kwargs},
               extra={"method": "ensemble", **facts})


if __name__ == "__main__":
    app.run(main)
