#!/usr/bin/env bash
# Runs every UCI baseline on every dataset (all standard splits) into RUNS_DIR, then
# writes the README table. Runs of more than ~60 s of CPU hold /tmp/ub_heavy.lock so
# heavy jobs on a shared machine don't overlap: MC dropout everywhere, and a large set's
# methods inside one lock (the published comparisons, ensemble and dropout, on every large
# set first). Finished runs (run.json present) are skipped, so it can be re-run to resume.
#   baselines/uci/run_all.sh [RUNS_DIR] [DATA_DIR]   (DATA_DIR default: $UB_DATA_DIR)
#   (internal: run_all.sh --locked RUNS_DIR DATA_DIR DATASET METHOD... runs those methods)
set -euo pipefail
cd "$(dirname "$0")/../.."
LOCK="flock /tmp/ub_heavy.lock"
METHODS="ensemble dropout deterministic variational_inference"
SMALL="uci_yacht uci_boston_housing uci_energy uci_concrete uci_wine"
LARGE="uci_kin8nm uci_power_plant uci_naval uci_protein"

run() {  # run METHOD DATASET [LOCK...]
  local method=$1 dataset=$2 out="$RUNS_DIR/$1/$2"
  shift 2
  mkdir -p "$RUNS_DIR/$method"
  [ -f "$out/run.json" ] && return 0
  echo "$(date +%T) $method $dataset"
  "$@" .venv/bin/python "baselines/uci/$method.py" --dataset="$dataset" --split=all \
    --data_dir="$DATA_DIR" --output_dir="$out" 2>"$out.log" >/dev/null \
    || { echo "FAILED: see $out.log"; return 0; }
  grep -o "over .*" "$out.log" | cut -c 1-160
}

if [ "${1:-}" = --locked ]; then
  RUNS_DIR=$2 DATA_DIR=$3
  dataset=$4
  shift 4
  for method in "$@"; do run "$method" "$dataset"; done
  exit 0
fi
RUNS_DIR=${1:-runs/uci}
DATA_DIR=${2:-${UB_DATA_DIR:?pass DATA_DIR (the folder holding uci/<folder>, e.g. ../shared/data) or set UB_DATA_DIR}}
for dataset in $SMALL; do
  for method in $METHODS; do
    if [ "$method" = dropout ]; then run "$method" "$dataset" $LOCK; else run "$method" "$dataset"; fi
  done
done
for methods in "ensemble dropout" "deterministic variational_inference"; do
  for dataset in $LARGE; do
    $LOCK "$0" --locked "$RUNS_DIR" "$DATA_DIR" "$dataset" $methods
  done
done
.venv/bin/python baselines/uci/make_table.py --runs_dir="$RUNS_DIR"
