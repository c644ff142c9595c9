"""absl flags shared by the UCI regression baselines, and the start of their runs.

A script calls `define_uci_flags()` (and `define_learning_rate_flag` if it selects the
learning rate) at import and adds its own method flags. In `main`, `start(flag_values(
FLAGS))` validates the flags, loads the splits and only then starts the run directory;
the returned `UCIRun` holds plain values (the splits, a `uci_protocol.Selection`) for the
library and writes the results at the end.
"""
from __future__ import annotations

import dataclasses
import sys
from typing import Any, Callable, Mapping, Sequence

import keras
from absl import flags

from uncertainty_baselines.datasets import uci
from uncertainty_baselines.runs import lifecycle
from uncertainty_baselines.training import flags as ub_flags
from uncertainty_baselines.training import loop, stacked, uci_protocol


def define_uci_flags(epoch_candidates: Sequence[int] = uci_protocol.EPOCH_CANDIDATES) -> None:
    """Flags every UCI baseline takes; ``epoch_candidates`` is the --epoch_candidates default."""
    flags.DEFINE_enum("dataset", "uci_boston_housing", list(uci.NAMES), "UCI dataset.")
    flags.DEFINE_string("split", "all", "'all' or distinct comma-separated standard split "
                        "indices.")
    flags.DEFINE_string("data_dir", None, "Folder holding uci/<folder>/ (../shared/data as is, "
                        "or a prepared copy); default $UB_DATA_DIR.")
    flags.DEFINE_string("output_dir", None, "Where run.json and metrics.jsonl go.", required=True)
    flags.DEFINE_bool("overwrite", False, "Delete output_dir's contents from another run.")
    flags.DEFINE_integer("seed", 0, "Seed of initialisation, shuffling and sampling.")
    flags.DEFINE_float("validation_percent", 0.0,
                       "If > 0: train on the first (1 - this) of each training split and report "
                       "on the rest ('validation/' keys) instead of the test split: for choosing "
                       "hyperparameters without looking at test data.")
    flags.DEFINE_float("selection_validation_percent", 0.2,
                       "Carve-out of each training split on which the number of epochs (and "
                       "for dropout the rate and tau) is chosen before retraining on all of it.")
    flags.DEFINE_integer("epochs", 0, "Training epochs; 0 = choose from --epoch_candidates "
                         "on the validation carve-out.")
    flags.DEFINE_list("epoch_candidates", [str(e) for e in epoch_candidates],
                      "Increasing epoch counts scored on the validation carve-out when "
                      "--epochs=0 (one training run scores them all).")
    flags.DEFINE_integer("max_selection_steps", 120_000,
                         "Epoch candidates beyond this many training steps are skipped (bounds "
                         "the cost on the large sets; 40 epochs are always a candidate).")
    flags.DEFINE_integer("hidden_units", 0, "Hidden units; 0 = the dataset's n_hidden.txt "
                         "(50, 100 for protein).")


def define_learning_rate_flag(default: Sequence[float]) -> None:
    """--learning_rate: one Adam learning rate, or candidates chosen on the carve-out."""
    flags.DEFINE_list("learning_rate", [str(lr) for lr in default],
                      "Adam learning rate, or comma-separated candidates: each is trained on "
                      "the validation carve-out and the best (learning rate, epochs) by "
                      "validation log-likelihood is retrained on the whole training split.")


def flag_values(values: flags.FlagValues) -> dict[str, Any]:
    """Values of the flags this module and the running script define (not absl's own)."""
    modules = (__name__, sys.argv[0])
    return {f.name: f.value for module in modules for f in values.get_flags_for_module(module)}


def parse_list(flag: str, values: Sequence[str], convert: Callable[[str], Any],
               kind: str) -> list:
    """A list flag's strings converted one by one; a ValueError naming --flag otherwise."""
    try:
        return [convert(v) for v in values]
    except ValueError:
        raise ValueError(f"--{flag} must be comma-separated {kind}, got {list(values)}.") \
            from None


def parse_splits(split: str, n_splits: int) -> list[int]:
    """'all' -> every split; 'K' or 'K,L' -> those distinct indices (range-checked): a
    repeated split would count twice in the mean and its standard error."""
    if split == "all":
        return list(range(n_splits))
    indices = parse_list("split", split.split(","), int, "integers or 'all'")
    bad = [k for k in indices if not 0 <= k < n_splits]
    if bad:
        raise ValueError(f"split indices {bad} out of range: valid 0..{n_splits - 1} or 'all'.")
    repeated = sorted({k for k in indices if indices.count(k) > 1})
    if repeated:
        raise ValueError(f"--split repeats {repeated}: give each split once.")
    return indices


def selection(values: Mapping[str, Any]) -> uci_protocol.Selection:
    """The selection settings of the flags (--learning_rate is a list of candidates when
    defined by `define_learning_rate_flag`, else one float); ValueError naming bad flags."""
    rates = values["learning_rate"]
    rates = parse_list("learning_rate", rates, float, "numbers") if isinstance(
        rates, list) else [rates]
    epochs = parse_list("epoch_candidates", values["epoch_candidates"], int, "integers")
    return uci_protocol.Selection(
        learning_rates=tuple(rates), epochs=values["epochs"], epoch_candidates=tuple(epochs),
        max_steps=values["max_selection_steps"],
        carve_out=values["selection_validation_percent"])


@dataclasses.dataclass
class UCIRun:
    """A started UCI baseline run: the locked run folder, the flag values, the selection
    settings, the dataset's settings and the requested splits (standardised, validation
    carved out if asked)."""
    run: lifecycle.Run
    values: dict[str, Any]
    selection: uci_protocol.Selection
    settings: uci.Settings
    split_indices: list[int]
    splits: list[uci.Split]

    @property
    def part(self) -> str:
        """The evaluated part: 'validation' when --validation_percent > 0, else 'test'."""
        return "validation" if self.values["validation_percent"] > 0 else "test"

    @property
    def hidden_units(self) -> tuple[int]:
        """--hidden_units, else the dataset's paper setting."""
        return (self.values["hidden_units"] or self.settings.n_hidden,)

    def finish(self, per_split: Sequence[dict[str, float]], model: keras.Model,
               model_spec: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, float]:
        """Writes the results and run.json (see `uci_protocol.write_results`)."""
        dataset, data_dir = self.values["dataset"], self.values["data_dir"]
        return uci_protocol.write_results(
            self.run, per_split, self.split_indices, part=self.part, model=model,
            model_spec=model_spec, seed=self.values["seed"],
            data_fingerprint=uci.fingerprint(dataset, data_dir, self.split_indices),
            extra=extra)


def start(values: Mapping[str, Any]) -> UCIRun:
    """Checks the backend and the data flags and loads the splits, then starts the run in
    --output_dir (locked; a same-flag rerun starts afresh), so bad input writes nothing."""
    stacked.require_tensorflow_backend()
    loop.run_ops_one_at_a_time()
    chosen = selection(values)
    dataset, data_dir = values["dataset"], values["data_dir"]
    settings = uci.read_settings(dataset, data_dir)
    split_indices = parse_splits(values["split"], settings.n_splits)
    splits = uci.load_splits(dataset, data_dir, split_indices, values["validation_percent"])
    run = lifecycle.start_run(values["output_dir"], values, overwrite=values["overwrite"],
                              ignore=("output_dir", "overwrite"), fresh=True,
                              defaults=ub_flags.flag_defaults(values))
    return UCIRun(run, dict(values), chosen, settings, split_indices, splits)
