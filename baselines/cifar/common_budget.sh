#!/bin/bash
# Every row of the CIFAR-10 methods table in README.md at the common budget: WRN-16-2,
# 4 epochs, global batch 128, cosine schedule (200-step warm-up to LR 0.2, cosine to zero),
# Glorot init, L2 5e-4 on the kernels, 1-pixel crop padding, seed 42 (ensemble members
# 42-45); the methods' own hyperparameters at their reference defaults. One row at a time
# under a lock; a killed row resumes from its last checkpoint when this script runs again,
# finished rows are skipped.
#   DATA_DIR=/work/data RUNS=/work/runs/table bash baselines/cifar/common_budget.sh
# ROWS="sngp heteroscedastic" runs only the named rows (the ensemble needs its members' runs);
# EXTRA="--shortcut_input=activated" adds flags to every trained row (use a new RUNS folder);
# CROP_PADDING=4 (the reference's) made the tables before 2026-12-05.
set -u
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
DATA_DIR=${DATA_DIR:-data}
RUNS=${RUNS:-runs/table}
LOCK=${LOCK:-/tmp/heavy.lock}
mkdir -p "$RUNS"
COMMON="--dataset=cifar10 --data_dir=$DATA_DIR --depth=16 --width=2 --train_epochs=4 --batch_size=128
  --lr_schedule=cosine --lr_warmup_epochs=0.5128 --initializer=glorot_uniform --l2=5e-4 --base_learning_rate=0.2
  --crop_padding=${CROP_PADDING:-1} ${EXTRA:-}"
EVAL="--eval_on_ood --ood_dataset=mnist --corruptions_interval=4 --severities=3"

row() {  # row NAME SCRIPT ARGS...: one run, skipped when its run.json exists.
  local name=$1 script=$2; shift 2
  [ -n "${ROWS:-}" ] && [[ " $ROWS " != *" $name "* ]] && return
  [ -f "$RUNS/$name/run.json" ] && { echo "skip $name (finished)"; return; }
  echo "=== $name $(date -u +%FT%TZ)"
  flock "$LOCK" $PY baselines/cifar/$script.py --output_dir="$RUNS/$name" "$@" > "$RUNS/$name.log" 2>&1
  echo "=== $name exit $? $(date -u +%FT%TZ)"
}

row det-s42 deterministic $COMMON --l2_scope=kernels --seed=42 $EVAL
for seed in 43 44 45; do row det-s$seed deterministic $COMMON --l2_scope=kernels --seed=$seed; done
row ensemble4 ensemble --dataset=cifar10 --data_dir=$DATA_DIR --batch_size=128 --seed=42 $EVAL \
  --run_dirs=$RUNS/det-s42,$RUNS/det-s43,$RUNS/det-s44,$RUNS/det-s45
row dropout dropout $COMMON --l2_scope=kernels --seed=42 $EVAL
row mimo mimo $COMMON --l2_scope=kernels --seed=42 $EVAL
row batchensemble batchensemble $COMMON --l2_scope=kernels --seed=42 $EVAL
row sngp sngp $COMMON --l2_scope=kernels --seed=42 $EVAL
# SNGP collapses at peak LR 0.2 (README); its row uses LR 0.1, the rate it trained at before.
row sngp-lr0.1 sngp $COMMON --l2_scope=kernels --seed=42 $EVAL --base_learning_rate=0.1
row heteroscedastic heteroscedastic $COMMON --l2_scope=kernels --seed=42 $EVAL
# KL annealed over 80% of training, as the reference's 200 of 250 epochs.
row rank1 rank1_bnn $COMMON --l2_scope=kernels --kl_annealing_epochs=3.2 --seed=42 $EVAL
row variational variational_inference $COMMON --kl_annealing_epochs=3.2 --seed=42 $EVAL  # its L2 is off the kernels
