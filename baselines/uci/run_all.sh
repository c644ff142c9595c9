#!/usr/bin/env bash
# Runs every UCI baseline on every dataset (all standard splits) into RUNS_DIR, then
# writes the README table. The five small sets run first; runs of more than ~60 s of CPU
# (every run on the four large sets, MC dropout's grid everywhere) hold
# /tmp/ub_heavy.lock so heavy jobs on a shared machine don't overlap. Finished runs
# (run.json present) are skipped, so it can be re-run to resume.
#   baselines/uci/run_all.sh [RUNS_DIR] [DATA_DIR] [METHODS...]
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS_DIR=${1:-runs/uci}
DATA_DIR=${2:-../shared/data}
shift $(( $# > 2 ? 2 : $# ))
METHODS=${*:-ensemble dropout deterministic variational_inference}
SMALL="uci_yacht uci_boston_housing uci_energy uci_concrete uci_wine"
LARGE="uci_kin8nm uci_power_plant uci_naval uci_protein"
for dataset in $SMALL $LARGE; do
  for method in $METHODS; do
    lock=""
    case " $LARGE " in *" $dataset "*) lock="flock /tmp/ub_heavy.lock";; esac
    [ "$method" = dropout ] && lock="flock /tmp/ub_heavy.lock"
    out="$RUNS_DIR/$method/$dataset"
    mkdir -p "$RUNS_DIR/$method"
    [ -f "$out/run.json" ] && continue
    echo "$(date +%T) $method $dataset"
    $lock .venv/bin/python "baselines/uci/$method.py" --dataset="$dataset" \
      --split=all --data_dir="$DATA_DIR" --output_dir="$out" 2>"$out.log" >/dev/null \
      || { echo "FAILED: see $out.log"; continue; }
    grep -o "over .*" "$out.log" | cut -c 1-160
  done
done
.venv/bin/python baselines/uci/make_table.py --runs_dir="$RUNS_DIR"
