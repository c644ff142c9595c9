"""The protocol of the UCI regression baselines, for scripts and notebooks alike.

Every model is a stack of independent networks (``ub.models.get("mlp_gaussian",
num_members=M)`` and friends) trained by ``training.stacked``: member m trains on split
``member_split[m]``, all members advance in one compiled step. The protocol: choose
(learning rate, epochs) on a carve-out of each training split (``Selection``), retrain on
the whole training split, score the predictive (an equal-weight Gaussian mixture) in
original target units, and report mean and standard error over splits. Everything takes
plain values; the baselines' absl flags map onto them in ``training.uci_flags``.
"""
from __future__ import annotations

import dataclasses
import math
import pathlib
from typing import Any, Callable, Mapping, Sequence

import keras
import numpy as np
from absl import logging

from uncertainty_baselines import metrics
from uncertainty_baselines.datasets import uci
from uncertainty_baselines.runs import checkpoint, lifecycle, summaries
from uncertainty_baselines.training import stacked

EPOCH_CANDIDATES = (40, 100, 200, 400)


@dataclasses.dataclass(frozen=True)
class Selection:
    """How (learning rate, epochs) are chosen on the carve-out before the final training.

    Attributes:
      learning_rates: Adam learning rates; several are candidates.
      epochs: fixed number of epochs; 0 chooses from ``epoch_candidates``.
      epoch_candidates: increasing epoch counts, all scored by one training run.
      max_steps: candidates beyond this many training steps are skipped (bounds the cost on
        the large sets; the first candidate is always kept).
      carve_out: the last fraction of each training split that scores the candidates.
    """
    learning_rates: tuple[float, ...] = (1e-3,)
    epochs: int = 0
    epoch_candidates: tuple[int, ...] = EPOCH_CANDIDATES
    max_steps: int = 120_000
    carve_out: float = 0.2

    def __post_init__(self):
        rates, candidates = self.learning_rates, self.epoch_candidates
        if not rates or any(not (lr > 0 and math.isfinite(lr)) for lr in rates):
            raise ValueError(f"learning rates must be positive and finite, got {list(rates)}.")
        if not candidates or candidates[0] < 1 or any(
                b <= a for a, b in zip(candidates, candidates[1:])):
            raise ValueError(f"epoch candidates must be positive and increasing, got "
                             f"{list(candidates)}.")
        if self.epochs < 0 or not 0 < self.carve_out < 1:
            raise ValueError(f"epochs must be >= 0 and the carve-out in (0, 1), got "
                             f"{self.epochs} and {self.carve_out}.")

    @property
    def needed(self) -> bool:
        """Whether anything is left to choose (epochs unset, or several learning rates)."""
        return not self.epochs or len(self.learning_rates) > 1

    def epochs_to_score(self, num_train: int, batch_size: int) -> list[int]:
        """The fixed epochs, else the candidates within ``max_steps`` at ``num_train`` rows:
        small sets need many epochs to see enough steps, large ones reach them in a few."""
        if self.epochs:
            return [self.epochs]
        steps = num_train // batch_size
        return [e for i, e in enumerate(self.epoch_candidates)
                if i == 0 or e * steps <= self.max_steps]


def stack(splits: Sequence[uci.Split], field: str) -> np.ndarray:
    """One field of every split stacked on a leading axis (splits have equal sizes)."""
    arrays = [getattr(s, field) for s in splits]
    shapes = sorted({a.shape for a in arrays})
    if len(shapes) != 1:
        raise ValueError(f"splits have different {field} shapes {shapes}; train them separately.")
    return np.stack(arrays)


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


def evaluation_data(splits: Sequence[uci.Split],
                    part: str = "test") -> tuple[np.ndarray, list[np.ndarray]]:
    """Stacked standardised features [S, N, D] of ``part`` ('test' or 'validation'), and
    each split's labels in original units."""
    labels = [getattr(s, f"y_{part}") * s.y_std + s.y_mean for s in splits]
    return stack(splits, f"x_{part}"), labels


def summarise(per_split: Sequence[Mapping[str, float]], part: str = "test") -> dict[str, float]:
    """``<part>/<metric>`` mean over splits and ``<part>/<metric>_se`` its standard error
    (sample std / sqrt(number of splits); NaN for a single split)."""
    summary = {}
    for key in per_split[0]:
        values = np.array([s[key] for s in per_split])
        summary[f"{part}/{key}"] = float(values.mean())
        summary[f"{part}/{key}_se"] = (float(values.std(ddof=1) / np.sqrt(len(values)))
                                     if len(values) > 1 else float("nan"))
    return summary


def mixture_log_likelihood(outputs: np.ndarray, labels: Sequence[np.ndarray],
                           splits: Sequence[uci.Split]) -> np.ndarray:
    """Mean log-likelihood per split, original units, of the equal-weight mixture of
    every Gaussian in ``outputs`` [T, S * E, N, 2] (standardised; member m -> split m // E)."""
    samples, members, n, _ = outputs.shape
    grouped = outputs.reshape(samples, len(splits), members // len(splits), n, 2)
    return np.array([-metrics.gaussian_nll(
        (grouped[:, k, ..., 0] * s.y_std + s.y_mean).reshape(-1, n),
        (grouped[:, k, ..., 1] * s.y_std).reshape(-1, n), label).mean()
        for k, (s, label) in enumerate(zip(splits, labels))])


def _select(make_model: Callable[[], keras.Model], splits: Sequence[uci.Split],
            member_split: np.ndarray, selection: Selection, num_samples: int,
            train_kwargs: dict[str, Any]) -> tuple[float, int, dict]:
    """(learning rate, epochs) with the best mean validation log-likelihood on the carve-out,
    and every candidate's score; a learning rate that diverges is skipped when others remain."""
    x_fit, y_fit, x_val, y_val = carve_validation(
        stack(splits, "x_train"), stack(splits, "y_train"), selection.carve_out)
    val_labels = [v * s.y_std + s.y_mean for v, s in zip(y_val, splits)]
    candidates = selection.epochs_to_score(x_fit.shape[1], train_kwargs["batch_size"])
    scores = {}
    for rate in selection.learning_rates:
        model = make_model()
        try:
            by_epochs = stacked.train_and_score_checkpoints(
                model, x_fit, y_fit, member_split, candidates,
                lambda: mixture_log_likelihood(np.concatenate(list(
                    stacked.predict(model, x_val, member_split, num_samples))),
                    val_labels, splits),
                learning_rate=rate, **train_kwargs)
        except FloatingPointError as error:
            if len(selection.learning_rates) == 1:
                raise
            logging.warning("learning rate %g diverged before the first candidate: %s",
                            rate, error)
            by_epochs = {}
        scores[rate] = {e: float(v.mean()) for e, v in by_epochs.items()}
        logging.info("learning rate %g: validation log-likelihood by epochs %s",
                     rate, scores[rate])
    scored = [(lr, e) for lr, by_epochs in scores.items() for e in by_epochs]
    if not scored:
        raise FloatingPointError(f"training diverged at every learning rate "
                                 f"{list(selection.learning_rates)}.")
    learning_rate, epochs = max(scored, key=lambda k: scores[k[0]][k[1]])
    logging.info("chosen: learning rate %g, %d epochs", learning_rate, epochs)
    return learning_rate, epochs, scores


def fit_gaussian_members(make_model: Callable[[], keras.Model], splits: Sequence[uci.Split],
                         selection: Selection, *, members_per_split: int, part: str = "test",
                         num_samples: int = 1,
                         **train_kwargs) -> tuple[list[dict[str, float]], dict, keras.Model]:
    """The protocol of the Gaussian-output baselines (deterministic, ensemble, VI).

    ``make_model()`` builds the stack of ``len(splits) * members_per_split`` Gaussian
    networks (member m trains on split m // members_per_split); ``train_kwargs`` go to
    ``stacked.train`` (batch_size, loss_fn, seed, ...). 1. If ``selection.needed``: train
    on each split's training rows minus the carve-out per candidate learning rate and keep
    the best (learning rate, epochs). 2. Retrain on the whole training splits with it.
    3. Score ``part`` with ``num_samples`` forward passes. Returns per-split metrics, facts
    for the run record, and the final model.
    """
    member_split = np.repeat(np.arange(len(splits)), members_per_split)
    learning_rate, epochs, scores = selection.learning_rates[0], selection.epochs, {}
    if selection.needed:
        learning_rate, epochs, scores = _select(make_model, splits, member_split, selection,
                                                num_samples, train_kwargs)
    model = make_model()
    stacked.train(model, stack(splits, "x_train"), stack(splits, "y_train"), member_split,
                  epochs=epochs, learning_rate=learning_rate, **train_kwargs)
    x_eval, labels = evaluation_data(splits, part)
    outputs = np.concatenate(list(stacked.predict(model, x_eval, member_split, num_samples)))
    grouped = outputs.reshape(len(outputs), len(splits), members_per_split, *outputs.shape[2:])
    per_split = []
    for k, (s, label) in enumerate(zip(splits, labels)):
        out = grouped[:, k].reshape(-1, *outputs.shape[2:])  # [T * E, N, 2]
        per_split.append(split_metrics(out[..., 0] * s.y_std + s.y_mean, out[..., 1] * s.y_std,
                                       label))
    return per_split, {"epochs": epochs, "learning_rate": learning_rate,
                       "validation_log_likelihood_by_learning_rate_and_epochs": scores}, model


def write_results(run: lifecycle.Run, per_split: Sequence[dict[str, float]],
                  split_indices: Sequence[int], *, part: str, model: keras.Model,
                  model_spec: Mapping[str, Any], seed: int, data_fingerprint: str,
                  extra: Mapping[str, Any]) -> dict[str, float]:
    """Writes metrics.jsonl (one line per split), the model's weights as a verified
    checkpoint and run.json (``model_spec`` = registry name and kwargs, so
    ``ub.models.load(run_dir)`` rebuilds the stack), then releases the run; returns the
    summary over splits."""
    checkpoint.save(pathlib.Path(run.output_dir) / checkpoint.SUBDIR, step=0,
                    parts={"model": checkpoint.variables_to_arrays(model.variables)}, state={})
    writer = summaries.SummaryWriter(run.output_dir, tensorboard=False)
    for k, result in zip(split_indices, per_split):
        writer.write(k, {f"{part}/{key}": v for key, v in result.items()}, split=k)
    writer.close()
    summary = summarise(per_split, part)
    run.finish(metrics=summary, seed=seed, data_fingerprint=data_fingerprint,
               model=dict(model_spec),
               extra={"splits": list(split_indices), "per_split": list(per_split), **extra})
    logging.info("over %d splits: %s", len(per_split),
                 ", ".join(f"{k}={v:.4g}" for k, v in summary.items()))
    return summary
