r"""Deep ensemble (Lakshminarayanan et al. 2017) of ResNet-50s on ImageNet.

baselines/cifar/ensemble.py's method: M finished runs of deterministic.py (reference M =
4), one per seed, evaluated together (the members' softmax averaged), with the ensemble
metrics and every member's own; members are checked before anything is written.
--train_missing_members first trains the --run_dirs that hold no finished run, as
deterministic.py would with the same flags and seed --seed + the directory's position.

  for seed in 0 1 2 3; do
    python baselines/imagenet/deterministic.py --data_dir=/data/tfds --seed=$seed \
        --output_dir=/runs/r50-seed$seed
  done
  python baselines/imagenet/ensemble.py --data_dir=/data/tfds \
      --run_dirs=/runs/r50-seed0,/runs/r50-seed1,/runs/r50-seed2,/runs/r50-seed3 \
      --output_dir=/runs/r50-ensemble
"""
import functools

from absl import app, flags

from deterministic import DETERMINISTIC  # The members' method and flags (this script's folder is on sys.path).
from uncertainty_baselines.training import experiment, imagenet, method
from uncertainty_baselines.training import flags as ub_flags

ub_flags.define_ensemble_flags(ensemble_size=4, member_training=True)
FLAGS = flags.FLAGS

ENSEMBLE = method.Method(
    "ensemble", validate=lambda config: imagenet.resnet50_errors(config) + ub_flags.ensemble_errors(config),
    method_flags=(*DETERMINISTIC.method_flags, *ub_flags.ENSEMBLE_FLAGS),
    ood_scores=("msp", "entropy", "mutual_information", "dempster_shafer"))

if __name__ == "__main__":
    app.run(lambda argv: experiment.run_from_flags(
        FLAGS, ENSEMBLE, run=functools.partial(experiment.run_ensemble_of_runs, member=DETERMINISTIC),
        task=imagenet.IMAGENET_TASK))
