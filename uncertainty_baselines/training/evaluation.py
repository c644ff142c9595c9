"""Evaluation of a classifier on the clean test set, OOD sets and corrupted sets.

Predictions come from `loop.predict` (padded rows already dropped, so every example is
scored exactly once) and are fed to `ub.metrics`; results use the flat reference names of
`ub.metrics.flatten_results` (`test/accuracy`, `ood/<name>_auroc`, `test/ece_<type>_<s>`...).
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import tensorflow as tf

from uncertainty_baselines import metrics as ub_metrics
from uncertainty_baselines.runs.run_record import fingerprint
from uncertainty_baselines.runs.progress import Progress

PredictFn = Callable[[Any], dict[str, np.ndarray]]


def classification_results(outputs: Mapping[str, np.ndarray], num_classes: int) -> dict[str, float]:
    """ub.metrics.ClassificationMetrics (accuracy, NLL, Brier, ECE with 15 bins, ...) of predictions."""
    m = ub_metrics.ClassificationMetrics(num_classes=num_classes)
    m.add_batch(outputs["probs"], label=outputs["labels"])
    return m.result()


def ood_results(outputs: Mapping[str, np.ndarray]) -> dict[str, float]:
    """AUROC, AUPR-in/out and FPR at 95% TPR of the 1 - max-probability score, OOD positive.

    `outputs` are predictions on a `ub.datasets.ood` set (with `is_in_distribution`).
    """
    m = ub_metrics.OODMetrics()
    m.add_batch(ub_metrics.ood_score(outputs["probs"], "msp"), is_ood=outputs["is_in_distribution"] == 0)
    return m.result()


def data_fingerprint(name: str, dataset: Iterable, strategy: tf.distribute.Strategy) -> str:
    """sha256 of an evaluation split as the model sees it: ids, labels and features, in id order.

    Identifies the exact data and preprocessing in the run record; padded rows are skipped.
    """
    ids, labels, sums = [], [], []
    for batch in dataset:
        local = {k: np.concatenate([np.asarray(t) for t in strategy.experimental_local_results(v)])
                 for k, v in batch.items() if k in ("id", "labels", "features", "mask")}
        keep = local["mask"] > 0
        features = local["features"][keep]
        bits = features.view(np.int32) if features.dtype == np.float32 else features
        ids.append(local["id"][keep])
        labels.append(local["labels"][keep])
        sums.append(bits.reshape(len(bits), -1).astype(np.int64).sum(axis=1))
    ids, labels, sums = (np.concatenate(a) for a in (ids, labels, sums))
    order = np.argsort(ids, kind="stable")
    return fingerprint(name, *(np.ascontiguousarray(a[order]).tobytes() for a in (ids, labels, sums)))


def timed_predict(predict: Callable[[Iterable], dict[str, np.ndarray]], dataset: Iterable
                  ) -> tuple[dict[str, np.ndarray], float]:
    """`predict(dataset)` and its wall time in seconds."""
    start = time.perf_counter()
    outputs = predict(dataset)
    return outputs, time.perf_counter() - start


def evaluate(predict: Callable[[Iterable], dict[str, np.ndarray]], *, num_classes: int,
             test: Iterable, ood: Mapping[str, Iterable] | None = None,
             corrupted: Mapping[tuple[str, int], Iterable] | None = None
             ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Flat metrics over the clean test set, each OOD set and each corrupted set.

    `predict` maps a dataset to masked-out predictions (see `loop.predict`); OOD sets are
    `ub.datasets.ood` sets (in-distribution test + OOD examples). Also reports
    `test/ms_per_example` (clean-set inference time) and `test/num_examples`. Returns the
    metrics and the clean predictions.
    """
    clean, seconds = timed_predict(predict, test)
    n = len(clean["labels"])
    ood_results_by_name = {name: ood_results(predict(ds))
                           for name, ds in (ood or {}).items()}
    corrupted_results = {}
    progress = Progress(len(corrupted or {}), unit="corrupted set")
    for key, ds in (corrupted or {}).items():
        corrupted_results[key] = classification_results(predict(ds), num_classes)
        progress.update(len(corrupted_results), force=len(corrupted_results) == len(corrupted))
    flat = ub_metrics.flatten_results(classification_results(clean, num_classes),
                                      ood=ood_results_by_name, corrupted=corrupted_results or None)
    flat["test/ms_per_example"] = 1000.0 * seconds / n
    flat["test/num_examples"] = float(n)
    return flat, clean
