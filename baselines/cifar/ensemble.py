r"""Deep ensemble (Lakshminarayanan et al. 2017) of Wide ResNets on CIFAR-10/100.

M independently seeded deterministic runs evaluated together: the prediction is the
equal-weight mean of the members' softmax. Besides the usual metrics it reports the
ensemble metrics (disagreement, ensemble and Gibbs NLL, mutual information), every
member's own metrics (`test/<metric>_member_<i>`) and the OOD scores that suit an
ensemble. The members are finished runs of deterministic.py, one per seed (reference:
M = 4), given as run directories; they are checked (same dataset, same model but for
its seed, verified checkpoints) before anything is written. With --train_missing_members,
the directories that hold no finished run are trained first, exactly as deterministic.py
would with the same flags and seed --seed + the directory's position (a killed member
resumes); then the ensemble is evaluated.

  for seed in 0 1 2 3; do
    python baselines/cifar/deterministic.py --dataset=cifar10 --data_dir=/work/data \
        --seed=$seed --output_dir=/tmp/wrn28-10-seed$seed
  done
  python baselines/cifar/ensemble.py --dataset=cifar10 --data_dir=/work/data \
      --run_dirs=/tmp/wrn28-10-seed0,/tmp/wrn28-10-seed1,/tmp/wrn28-10-seed2,/tmp/wrn28-10-seed3 \
      --output_dir=/tmp/wrn28-10-ensemble

or, in one command that trains whichever of the four runs is not finished:

  python baselines/cifar/ensemble.py --dataset=cifar10 --data_dir=/work/data --seed=0 \
      --train_missing_members --run_dirs=/tmp/wrn28-10-seed0,/tmp/wrn28-10-seed1,/tmp/wrn28-10-seed2,/tmp/wrn28-10-seed3 \
      --output_dir=/tmp/wrn28-10-ensemble
"""
import functools

from absl import app, flags

from deterministic import DETERMINISTIC  # The members' method and flags (this script's folder is on sys.path).
from uncertainty_baselines.training import experiment, method
from uncertainty_baselines.training import flags as ub_flags

ub_flags.define_ensemble_flags(ensemble_size=4, member_training=True)
FLAGS = flags.FLAGS

ENSEMBLE = method.Method("ensemble", validate=ub_flags.ensemble_errors,
                         method_flags=(*ub_flags.ENSEMBLE_FLAGS, *DETERMINISTIC.method_flags),
                         ood_scores=("msp", "entropy", "mutual_information", "dempster_shafer"))

if __name__ == "__main__":
    app.run(lambda argv: experiment.run_from_flags(
        FLAGS, ENSEMBLE, run=functools.partial(experiment.run_ensemble_of_runs, member=DETERMINISTIC)))
