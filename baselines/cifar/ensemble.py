r"""Deep ensemble (Lakshminarayanan et al. 2017) of Wide ResNets on CIFAR-10/100.

M independently seeded deterministic runs evaluated together: the prediction is the
equal-weight mean of the members' softmax. Besides the usual metrics it reports the
ensemble metrics (disagreement, ensemble and Gibbs NLL, mutual information), every
member's own metrics (`test/<metric>_member_<i>`) and the OOD scores that suit an
ensemble. The members are finished runs of deterministic.py, one per seed (reference:
M = 4), given as run directories; they are checked (same dataset, same model but for
its seed, verified checkpoints) before anything is written.

  for seed in 0 1 2 3; do
    python baselines/cifar/deterministic.py --dataset=cifar10 --data_dir=/work/data \
        --seed=$seed --output_dir=/tmp/wrn28-10-seed$seed
  done
  python baselines/cifar/ensemble.py --dataset=cifar10 --data_dir=/work/data \
      --run_dirs=/tmp/wrn28-10-seed0,/tmp/wrn28-10-seed1,/tmp/wrn28-10-seed2,/tmp/wrn28-10-seed3 \
      --output_dir=/tmp/wrn28-10-ensemble
"""
from absl import app, flags

from uncertainty_baselines.training import experiment, method
from uncertainty_baselines.training import flags as ub_flags

ub_flags.define_image_flags()
ub_flags.define_ensemble_flags(ensemble_size=4)
FLAGS = flags.FLAGS

ENSEMBLE = method.Method("ensemble", validate=ub_flags.ensemble_errors, method_flags=ub_flags.ENSEMBLE_FLAGS,
                         ood_scores=("msp", "entropy", "mutual_information", "dempster_shafer"))

if __name__ == "__main__":
    app.run(lambda argv: experiment.run_from_flags(FLAGS, ENSEMBLE, run=experiment.run_ensemble_of_runs))
