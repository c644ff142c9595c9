#!/bin/bash
# The CLINC150 results table at a budget these 2 CPU cores can afford: MiniLM (the default
# --bert_dir), 5 epochs, global batch 64 (1,170 steps), every method's other flags at its
# reference default (peak LR 1e-4 deterministic and MC dropout, 5e-5 SNGP), plus the
# deterministic model at peak LR 3e-4 (the reference LR is set for 150 epochs; at 5 it
# leaves the softmax flat), whose seeds 0-3 are the ensemble's members. One run at a time
# under a lock; a killed run resumes when this script runs again, finished runs are
# skipped. Rows in the order a partial table is most useful: deterministic, SNGP,
# deterministic at LR 3e-4, its other seeds, the ensemble, MC dropout.
#   DATA_DIR=/work/data RUNS=/work/runs/clinc bash baselines/clinc_intent/short_budget.sh
set -u
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
DATA_DIR=${DATA_DIR:-data}
RUNS=${RUNS:-runs/clinc}
LOCK=${LOCK:-/tmp/heavy.lock}
mkdir -p "$RUNS"
BUDGET="--data_dir=$DATA_DIR --train_epochs=5 --batch_size=64"

row() {  # row NAME SCRIPT ARGS...: one run, skipped when its run.json exists.
  local name=$1 script=$2; shift 2
  [ -f "$RUNS/$name/run.json" ] && { echo "skip $name (finished)"; return; }
  echo "=== $name $(date -u +%FT%TZ)"
  flock "$LOCK" $PY baselines/clinc_intent/$script.py --output_dir="$RUNS/$name" "$@" >> "$RUNS/$name.log" 2>&1
  echo "=== $name exit $? $(date -u +%FT%TZ)"
}

row deterministic-seed0 deterministic $BUDGET --seed=0
row sngp sngp $BUDGET --seed=0
for seed in 0 1 2 3; do
  row deterministic-lr3e-4-seed$seed deterministic $BUDGET --learning_rate=3e-4 --seed=$seed
done
MEMBERS=$RUNS/deterministic-lr3e-4-seed0,$RUNS/deterministic-lr3e-4-seed1
MEMBERS=$MEMBERS,$RUNS/deterministic-lr3e-4-seed2,$RUNS/deterministic-lr3e-4-seed3
row ensemble ensemble --data_dir=$DATA_DIR --batch_size=64 --ensemble_size=4 --run_dirs=$MEMBERS
row dropout dropout $BUDGET --seed=0
