"""What the four UCI baselines share: flags, stacked data, the validation carve-out and
selection of (learning rate, epochs), the Gaussian-mixture predictive in original units, and
the mean / standard error over splits.

Every model here is a stack of M independent networks (``ub.models.mlp`` with
``num_members=M``) trained by ``uncertainty_baselines.training.stacked``: member m trains on
split ``member_split[m]``, all members advance in one compiled step.
"""
from __future__ import annotations

import math
import os
import pathlib
import sys
import time
from typing import Callable, Sequence

import keras
import numpy as np
from absl import flags, logging

from uncertainty_baselines import metrics
from uncertainty_baselines.datasets import uci
from uncertainty_baselines.runs import checkpoint, run_record, summaries
from uncertainty_baselines.training import stacked
from uncertainty_baselines.runs import output_dir as output_dir_lib

DEFAULT_DATA_DIR = str(pathlib.Path(__file__).resolve().parents[3] / "shared" / "data")


def require_tensorflow_backend() -> None:
    """The training loop uses tf.GradientTape; the models themselves are backend-neutral."""
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(f"The UCI baselines train with the TensorFlow backend; got "
                           f"KERAS_BACKEND={keras.backend.backend()!r}.")


def parse_splits(split: str, n_splits: int) -> list[int]:
    """'all' -> every split; 'K' or 'K,L' -> those indices (range-checked)."""
    if split == "all":
        return list(range(n_splits))
    try:
        indices = [int(s) for s in split.split(",")]
    except ValueError:
        raise ValueError(f"--split must be 'all' or comma-separated integers, got {split!r}.") \
            from None
    bad = [k for k in indices if not 0 <= k < n_splits]
    if bad:
        raise ValueError(f"split indices {bad} out of range: valid 0..{n_splits - 1} or 'all'.")
    return indices


def stack(splits: Sequence[uci.Split], field: str) -> np.ndarray:
    """One field of every split stacked on a leading axis (splits have equal sizes)."""
    arrays = [getattr(s, field) for s in splits]
    if len({a.shape for a in arrays}) != 1:
        raise ValueError(f"splits have different {field} shapes {sorted({a.shape for a in arrays})}; "
                         "train them separately.")
    return np.stack(arrays)


EPOCH_CANDIDATES = (40, 100, 200, 400)


def parse_flag_list(flag: str, values: Sequence[str], convert: Callable[[str], float],
                    kind: str) -> list:
    """A list flag's strings converted one by one; a ValueError naming --flag otherwise."""
    try:
        return [convert(v) for v in values]
    except ValueError:
        raise ValueError(f"--{flag} must be comma-separated {kind}, got {values}.") from None


def parse_epoch_candidates(values: Sequence[str]) -> list[int]:
    """The --epoch_candidates list as increasing positive ints."""
    epochs = parse_flag_list("epoch_candidates", values, int, "integers")
    if not epochs or epochs[0] < 1 or any(b <= a for a, b in zip(epochs, epochs[1:])):
        raise ValueError(f"--epoch_candidates must be positive and increasing, got {values}.")
    return epochs


def epoch_candidates(num_train: int, batch_size: int) -> list[int]:
    """Candidate epoch counts for the validation selection: --epoch_candidates whose step
    count stays within --max_selection_steps (the first one is always kept). Small sets
    need many epochs to see enough steps; large ones reach them in a few."""
    steps, max_steps = num_train // batch_size, flags.FLAGS.max_selection_steps
    candidates = parse_epoch_candidates(flags.FLAGS.epoch_candidates)
    return [e for i, e in enumerate(candidates) if i == 0 or e * steps <= max_steps]


def carve_validation(x: np.ndarray, y: np.ndarray, percent: float):
    """(x_fit, y_fit, x_validation, y_validation): the last ``percent`` of each split's
    (standardised) training rows held out, as in Gal & Ghahramani's code."""
    cut = x.shape[1] - int(percent * x.shape[1])
    return x[:, :cut], y[:, :cut], x[:, cut:], y[:, cut:]


def split_metrics(mean: np.ndarray, std: np.ndarray, label: np.ndarray,
                  max_components: int = 100, rows_per_batch: int = 256) -> dict[str, float]:
    """Test metrics of one split's predictive, an equal-weight Gaussian mixture.

    ``mean``, ``std`` [C, N] and ``label`` [N] in ORIGINAL target units. Log-likelihood
    and RMSE use all C components; CRPS (O(C^2) per example) and the central 95% interval
    use the mixture of the first ``max_components`` components (all of them for ensembles
    of 5; a subsample of the MC draws for dropout and VI).
    """
    streaming = metrics.RegressionMetrics(level=0.95)
    k = min(max_components, len(mean))
    for start in range(0, len(label), rows_per_batch):
        rows = slice(start, start + rows_per_batch)
        streaming.add_batch(mean[:k, rows], std[:k, rows], label=label[rows])
    result = streaming.result()
    return {"log_likelihood": -float(np.mean(metrics.gaussian_nll(mean, std, label))),
            "rmse": metrics.rmse(mean, label),
            "crps": result["crps"],
            "interval_coverage_95": result["interval_coverage"],
            "interval_width_95": result["interval_width"]}


def evaluation_part() -> str:
    """'validation' when --validation_percent > 0, else 'test'."""
    return "validation" if flags.FLAGS.validation_percent > 0 else "test"


def evaluation_data(splits: Sequence[uci.Split]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Stacked standardised features [S, N, D] of the evaluation part, and each split's
    labels in original units."""
    part = evaluation_part()
    labels = [getattr(s, f"y_{part}") * s.y_std + s.y_mean for s in splits]
    return stack(splits, f"x_{part}"), labels


def summarise(per_split: Sequence[dict[str, float]], part: str = "test") -> dict[str, float]:
    """``<part>/<metric>`` mean over splits and ``<part>/<metric>_se`` its standard error
    (sample std / sqrt(number of splits); NaN for a single split)."""
    summary = {}
    for key in per_split[0]:
        values = np.array([s[key] for s in per_split])
        summary[f"{part}/{key}"] = float(values.mean())
        summary[f"{part}/{key}_se"] = (float(values.std(ddof=1) / np.sqrt(len(values)))
                                     if len(values) > 1 else float("nan"))
    return summary


def data_fingerprint(name: str, data_dir: str, split_indices: Sequence[int]) -> str:
    """sha256 over the data file and the index files of the splits used."""
    path = uci.dataset_dir(name, data_dir)
    files = ["data.txt", "index_features.txt", "index_target.txt"] + [
        f"index_{part}_{k}.txt" for k in split_indices for part in ("train", "test")]
    return run_record.fingerprint(*[(path / f).read_bytes() for f in files])


def define_common_flags() -> None:
    """Flags every UCI baseline takes (method-specific ones are defined in the script)."""
    flags.DEFINE_enum("dataset", "uci_boston_housing", list(uci.NAMES), "UCI dataset.")
    flags.DEFINE_string("split", "all", "'all' or comma-separated standard split indices.")
    flags.DEFINE_string("data_dir", os.environ.get("UB_SHARED_DATA", DEFAULT_DATA_DIR),
                        "Folder holding uci/<folder>/ (../shared/data as is, or a prepared copy).")
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
    flags.DEFINE_list("epoch_candidates", [str(e) for e in EPOCH_CANDIDATES],
                      "Increasing epoch counts scored on the validation carve-out when "
                      "--epochs=0 (one training run scores them all).")
    flags.DEFINE_integer("max_selection_steps", 120_000,
                         "Epoch candidates beyond this many training steps are skipped (bounds "
                         "the cost on the large sets; 40 epochs are always a candidate).")
    flags.DEFINE_integer("hidden_units", 0, "Hidden units; 0 = the dataset's n_hidden.txt "
                         "(50, 100 for protein).")


def run_flags() -> dict:
    """Values of the flags defined by the running script and by this module (not absl's)."""
    modules = (sys.argv[0], __name__)
    return {f.name: f.value for module in modules
            for f in flags.FLAGS.get_flags_for_module(module)}


# (start time, code version) of this process's run, set by start_run() for finish().
_RUN_START: tuple[float, dict] | None = None


def start_run() -> tuple[uci.Settings, list[int], list[uci.Split]]:
    """Checks the backend, refuses a mismatched --output_dir, notes the start time and git
    commit (run.json records the code that ran, not the tree at the end), and loads the
    requested splits. Returns the dataset's paper settings, the split indices and the splits.
    """
    global _RUN_START
    _RUN_START = (time.time(), run_record.git_commit())
    require_tensorflow_backend()
    settings = uci.read_settings(flags.FLAGS.dataset, flags.FLAGS.data_dir)
    split_indices = parse_splits(flags.FLAGS.split, settings.n_splits)
    output_dir_lib.prepare_output_dir(flags.FLAGS.output_dir, run_flags(),
                                      overwrite=flags.FLAGS.overwrite,
                                      ignore=("output_dir", "overwrite"))
    return settings, split_indices, load(split_indices)


def load(split_indices: Sequence[int]) -> list[uci.Split]:
    """The requested splits of --dataset, with --validation_percent carved out of train."""
    return uci.load_splits(flags.FLAGS.dataset, flags.FLAGS.data_dir, split_indices,
                           flags.FLAGS.validation_percent)


def finish(output_dir: str, per_split: Sequence[dict[str, float]], split_indices: Sequence[int],
           *, model: keras.Model, seed: int, model_kwargs: dict,
           extra: dict) -> dict[str, float]:
    """Writes metrics.jsonl (one line per split), the final model's weights as a verified
    checkpoint, and run.json (so ``ub.models.load(output_dir)`` rebuilds the stacked
    model); returns the summary. Call start_run() first."""
    if _RUN_START is None:
        raise RuntimeError("finish() needs start_run() to have been called first.")
    start_time, code_version = _RUN_START
    checkpoint.save(pathlib.Path(output_dir) / checkpoint.SUBDIR, step=0,
                    parts={"model": checkpoint.variables_to_arrays(model.variables)}, state={})
    writer = summaries.SummaryWriter(output_dir, tensorboard=False)
    for k, result in zip(split_indices, per_split):
        writer.write(k, {f"{evaluation_part()}/{key}": v for key, v in result.items()}, split=k)
    writer.close()
    summary = summarise(per_split, evaluation_part())
    run_record.write_run_record(
        output_dir, flags=run_flags(), metrics=summary, seed=seed,
        data_fingerprint=data_fingerprint(flags.FLAGS.dataset, flags.FLAGS.data_dir,
                                          split_indices),
        wall_time_s=time.time() - start_time, model={"name": "mlp", "kwargs": model_kwargs},
        git=code_version,
        extra={"splits": list(split_indices), "per_split": list(per_split), **extra})
    logging.info("%s over %d splits: %s", flags.FLAGS.dataset, len(per_split),
                 ", ".join(f"{k}={v:.4g}" for k, v in summary.items()))
    return summary


def gaussian_members_log_likelihood(outputs: np.ndarray, labels: Sequence[np.ndarray],
                                    splits: Sequence[uci.Split]) -> np.ndarray:
    """Mean log-likelihood per split, original units, of the equal-weight mixture of
    every Gaussian in ``outputs`` [T, S * E, N, 2] (standardised; member m -> split m // E)."""
    samples, members, n, _ = outputs.shape
    grouped = outputs.reshape(samples, len(splits), members // len(splits), n, 2)
    return np.array([-metrics.gaussian_nll(
        (grouped[:, k, ..., 0] * s.y_std + s.y_mean).reshape(-1, n),
        (grouped[:, k, ..., 1] * s.y_std).reshape(-1, n), label).mean()
        for k, (s, label) in enumerate(zip(splits, labels))])


def define_learning_rate_flag(default: Sequence[float]) -> None:
    """--learning_rate: one Adam learning rate, or candidates chosen on the carve-out."""
    flags.DEFINE_list("learning_rate", [str(lr) for lr in default],
                      "Adam learning rate, or comma-separated candidates: each is trained on "
                      "the validation carve-out and the best (learning rate, epochs) by "
                      "validation log-likelihood is retrained on the whole training split.")


def parse_learning_rates(values: Sequence[str]) -> list[float]:
    """The --learning_rate list as positive floats."""
    rates = parse_flag_list("learning_rate", values, float, "numbers")
    if not rates or any(not (lr > 0 and math.isfinite(lr)) for lr in rates):
        raise ValueError(f"--learning_rate values must be positive and finite, got {values}.")
    return rates


def fit_gaussian_members(make_model: Callable[[], keras.Model], splits: Sequence[uci.Split],
                         members_per_split: int, num_samples: int = 1,
                         **train_kwargs) -> tuple[list[dict[str, float]], dict, keras.Model]:
    """The protocol of the Gaussian-output baselines (deterministic, ensemble, VI).

    1. Unless --epochs is set and --learning_rate is a single value: for each candidate
       learning rate, train on each split's training rows minus the carve-out and score the
       validation mixture log-likelihood at every candidate epoch count; keep the best
       (learning rate, epochs) by the mean over splits. 2. Retrain on the whole training
       splits with it. 3. Score the evaluation part (test, or --validation_percent's part).
    Returns per-split metrics, facts for the run record, and the final model.
    """
    x_train, y_train = stack(splits, "x_train"), stack(splits, "y_train")
    member_split = np.repeat(np.arange(len(splits)), members_per_split)
    rates = parse_learning_rates(flags.FLAGS.learning_rate)
    epochs, learning_rate, selection = flags.FLAGS.epochs, rates[0], {}
    if not epochs or len(rates) > 1:
        x_fit, y_fit, x_val, y_val = carve_validation(
            x_train, y_train, flags.FLAGS.selection_validation_percent)
        val_labels = [v * s.y_std + s.y_mean for v, s in zip(y_val, splits)]
        candidates = [epochs] if epochs else epoch_candidates(x_fit.shape[1],
                                                               train_kwargs["batch_size"])
        for rate in rates:
            model = make_model()
            try:
                scores = stacked.train_and_score_checkpoints(
                    model, x_fit, y_fit, member_split, candidates,
                    lambda: gaussian_members_log_likelihood(np.concatenate(list(
                        stacked.predict(model, x_val, member_split, num_samples))),
                        val_labels, splits),
                    learning_rate=rate, **train_kwargs)
            except FloatingPointError as error:
                if len(rates) == 1:
                    raise
                logging.warning("learning rate %g diverged before the first candidate: %s",
                                rate, error)
                scores = {}
            selection[rate] = {e: float(v.mean()) for e, v in scores.items()}
            logging.info("learning rate %g: validation log-likelihood by epochs %s",
                         rate, selection[rate])
        scored = [(lr, e) for lr, by_epochs in selection.items() for e in by_epochs]
        if not scored:
            raise FloatingPointError(f"training diverged at every learning rate {rates}.")
        learning_rate, epochs = max(scored, key=lambda k: selection[k[0]][k[1]])
        logging.info("chosen: learning rate %g, %d epochs", learning_rate, epochs)
    model = make_model()
    stacked.train(model, x_train, y_train, member_split, epochs=epochs,
                  learning_rate=learning_rate, **train_kwargs)
    x_eval, labels = evaluation_data(splits)
    outputs = np.concatenate(list(stacked.predict(model, x_eval, member_split, num_samples)))
    grouped = outputs.reshape(len(outputs), len(splits), members_per_split, *outputs.shape[2:])
    per_split = []
    for k, (s, label) in enumerate(zip(splits, labels)):
        out = grouped[:, k].reshape(-1, *outputs.shape[2:])  # [T * E, N, 2]
        per_split.append(split_metrics(out[..., 0] * s.y_std + s.y_mean, out[..., 1] * s.y_std,
                                       label))
    return per_split, {"epochs": epochs, "learning_rate": learning_rate,
                       "validation_log_likelihood_by_learning_rate_and_epochs": selection}, model
