r"""Deep ensemble (Lakshminarayanan et al. 2017) of BERTs on CLINC150 intent detection.

M independently seeded deterministic runs evaluated together: the prediction is the
equal-weight mean of the members' softmax. Besides the usual metrics it reports the
ensemble metrics (disagreement, ensemble and Gibbs NLL, mutual information), every
member's own metrics (`test/<metric>_member_<i>`) and the OOD scores that suit an
ensemble on the combined test set. The members are finished runs of deterministic.py,
one per seed (reference: M = 10), given as run directories; they are checked (same
dataset, same model but for its seed, verified checkpoints) before anything is written.
--train_missing_members first trains the --run_dirs that hold no finished run, as
deterministic.py would with the same flags and seed --seed + the directory's position.

  for seed in 0 1 2 3; do
    python baselines/clinc_intent/deterministic.py --data_dir=/work/data \
        --seed=$seed --output_dir=/tmp/clinc-seed$seed
  done
  python baselines/clinc_intent/ensemble.py --data_dir=/work/data \
      --run_dirs=/tmp/clinc-seed0,/tmp/clinc-seed1,/tmp/clinc-seed2,/tmp/clinc-seed3 \
      --output_dir=/tmp/clinc-ensemble
"""
import functools

from absl import app, flags

from deterministic import DETERMINISTIC  # The members' method and flags (this script's folder is on sys.path).
from uncertainty_baselines.training import experiment, method, text
from uncertainty_baselines.training import flags as ub_flags

ub_flags.define_ensemble_flags(ensemble_size=4, member_training=True)
FLAGS = flags.FLAGS

ENSEMBLE = method.Method("ensemble", validate=ub_flags.ensemble_errors,
                         method_flags=(*ub_flags.ENSEMBLE_FLAGS, *DETERMINISTIC.method_flags),
                         ood_scores=("msp", "entropy", "mutual_information", "dempster_shafer"))

if __name__ == "__main__":
    app.run(lambda argv: experiment.run_from_flags(
        FLAGS, ENSEMBLE, run=functools.partial(experiment.run_ensemble_of_runs, member=DETERMINISTIC),
        task=text.TEXT))
