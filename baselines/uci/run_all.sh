#!/usr/bin/env bash
# Runs every UCI baseline on every dataset (all standard splits) into RUNS_DIR, then
# writes the README table. Each run holds /tmp/ub_heavy.lock so heavy jobs don't overlap.
#   baselines/uci/run_all.sh [RUNS_DIR] [DATA_DIR] [METHODS...]
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS_DIR=${1:-runs/uci}
DATA_DIR=${2:-../shared/data}
shift $(( $# > 2 ? 2 : $# ))
METHODS=${*:-ensemble dropout deterministic variational_inference}
DATASETS="uci_yacht uci_boston_housing uci_energy uci_concrete uci_wine uci_kin8nm
          uci_power_plant uci_naval uci_protein"
for method in $METHODS; do
  for dataset in $DATASETS; do
    out="$RUNS_DIR/$method/$dataset"
    mkdir -p "$RUNS_DIR/$method"
    [ -f "$out/run.json" ] && continue
    echo "$(date +%T) $method $dataset"
    flock /tmp/ub_heavy.lock .venv/bin/python "baselines/uci/$method.py" --dataset="$dataset" \
      --split=all --data_dir="$DATA_DIR" --output_dir="$out" 2>"$out.log" >/dev/null \
      || { echo "FAILED: see $out.log"; continue; }
    grep -o "over .*" "$out.log" | cut -c 1-160
  done
done
.venv/bin/python baselines/uci/make_table.py --runs_dir="$RUNS_DIR"
