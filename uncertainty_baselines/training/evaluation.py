"""Evaluation of a classifier on the clean test set, OOD sets and corrupted sets.

Predictions come from `loop.predict` (padded rows already dropped, so every example is
scored exactly once) and are fed to `ub.metrics`; results use the flat reference names of
`ub.metrics.flatten_results` (`test/accuracy`, `ood/<name>_auroc`, `test/ece_<type>_<s>`...).
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import tensorflow as tf
from absl import logging

from uncertainty_baselines import metrics as ub_metrics
from uncertainty_baselines.runs import curves as run_curves
from uncertainty_baselines.runs import predictions as run_predictions
from uncertainty_baselines.runs.run_record import fingerprint
from uncertainty_baselines.runs.progress import Progress
from uncertainty_baselines.training import distribution

PredictFn = Callable[[Any], dict[str, np.ndarray]]
# evaluate's on_predictions: (kind "test" | "ood" | "corrupted", key, checked predictions).
OnPredictions = Callable[[str, Any, Mapping[str, np.ndarray]], None]


def classification_results(outputs: Mapping[str, np.ndarray], num_classes: int,
                           per_member: bool = False) -> dict[str, float]:
    """ub.metrics.ClassificationMetrics (accuracy, NLL, Brier, ECE with 15 bins, ...) of predictions.

    With member predictions (`member_probs` [N, M, K]) and `per_member`, also the ensemble
    metrics (disagreement, ensemble and Gibbs NLL, mutual information, ...) and every
    member's own metrics as `<metric>_member_<i>`.
    """
    m = ub_metrics.ClassificationMetrics(num_classes=num_classes)
    m.add_batch(outputs["probs"], label=outputs["labels"])
    results = m.result()
    if per_member and "member_probs" in outputs:
        members = np.moveaxis(outputs["member_probs"], 1, 0)  # [M, N, K], as ub.metrics takes them.
        ensemble = ub_metrics.EnsembleMetrics()
        ensemble.add_batch(members, label=outputs["labels"])
        results.update(ensemble.result())
        for i, probs in enumerate(members):
            member = ub_metrics.ClassificationMetrics(num_classes=num_classes)
            member.add_batch(probs, label=outputs["labels"])
            results.update({f"{k}_member_{i}": v for k, v in member.result().items()})
    return results


def ood_scores(outputs: Mapping[str, np.ndarray], kind: str) -> np.ndarray:
    """Per-example OOD score of `kind` (see ub.metrics.ood_score) from predictions.

    Probability kinds use the (member-mean) probabilities, logit kinds the (member-mean)
    logits, `mutual_information` the member probabilities.
    """
    if kind == "mutual_information":
        if "member_probs" not in outputs:
            raise ValueError("the mutual_information OOD score needs predictions with a member axis")
        return ub_metrics.ood_score(np.moveaxis(outputs["member_probs"], 1, 0), kind)
    if kind in ub_metrics.LOGIT_SCORE_KINDS:
        logits = outputs["logits"]
        return ub_metrics.ood_score(logits.mean(axis=1) if logits.ndim == 3 else logits, kind,
                                    from_logits=True)
    return ub_metrics.ood_score(outputs["probs"], kind)


def ood_results(outputs: Mapping[str, np.ndarray], kinds: Sequence[str] = ("msp",)
                ) -> dict[str, dict[str, float]]:
    """AUROC, AUPR-in/out and FPR at 95% TPR of each OOD score kind, OOD positive.

    `outputs` are predictions on a `ub.datasets.ood` set (with `is_in_distribution`).
    Returns {kind: metrics}.
    """
    results = {}
    for kind in kinds:
        m = ub_metrics.OODMetrics()
        m.add_batch(ood_scores(outputs, kind), is_ood=outputs["is_in_distribution"] == 0)
        results[kind] = m.result()
    return results


def reliability_curve(outputs: Mapping[str, np.ndarray], num_classes: int) -> dict[str, list]:
    """The reliability-diagram record (runs/curves.py) of predictions: per confidence bin
    (ClassificationMetrics' 15), the count, mean confidence and accuracy."""
    m = ub_metrics.ClassificationMetrics(num_classes=num_classes)
    m.add_batch(outputs["probs"], label=outputs["labels"])
    return run_curves.reliability_entry(m.reliability_diagram())


def roc_curves(outputs: Mapping[str, np.ndarray], dataset: str, kinds: Sequence[str] = ("msp",)
               ) -> dict[str, dict[str, Any]]:
    """ROC-curve records (runs/curves.py) of predictions on an OOD set, one per score kind,
    keyed `ood_key(dataset, kind)`; OOD positive, at most run_curves.ROC_POINTS points."""
    is_ood = outputs["is_in_distribution"] == 0
    records = {}
    for kind in kinds:
        fpr, tpr = ub_metrics.roc_curve(ood_scores(outputs, kind), is_ood, max_points=run_curves.ROC_POINTS)
        records[ood_key(dataset, kind)] = run_curves.roc_entry(
            fpr, tpr, dataset=dataset, kind=kind, num_in=int(np.sum(~is_ood)), num_ood=int(np.sum(is_ood)))
    return records


class CurveRecorder:
    """An `evaluate(..., on_predictions=)` callback collecting what a report draws.

    After an evaluation, `curves` is the runs/curves.py record of it: the reliability
    diagrams of the clean test set ("test"), each corrupted set ("test/<type>_<severity>")
    and each OOD set whose every example has a class ("ood/<name>"), and the ROC curves of
    each OOD set for each of `ood_score_kinds`. Write it with `run_curves.append_curves`.
    """

    def __init__(self, num_classes: int, ood_score_kinds: Sequence[str] = ("msp",)):
        self.num_classes, self.ood_score_kinds = num_classes, tuple(ood_score_kinds)
        self.curves: dict[str, dict[str, Any]] = {"reliability": {}, "roc": {}}

    def __call__(self, kind: str, key: Any, outputs: Mapping[str, np.ndarray]) -> None:
        reliability = self.curves["reliability"]
        if kind == "test":
            reliability["test"] = reliability_curve(outputs, self.num_classes)
        elif kind == "corrupted":
            reliability[f"test/{key[0]}_{key[1]}"] = reliability_curve(outputs, self.num_classes)
        elif kind == "shifted":
            reliability[key] = reliability_curve(outputs, self.num_classes)
        elif kind == "ood":
            self.curves["roc"].update(roc_curves(outputs, key, self.ood_score_kinds))
            if np.all(outputs["labels"] >= 0):
                reliability[f"ood/{key}"] = reliability_curve(outputs, self.num_classes)


class PredictionsSaver:
    """An `evaluate(..., on_predictions=)` callback writing each set's per-example
    predictions to `directory` (runs/predictions.py), put in place by `commit`; with
    `directory` None it writes nothing. `also(callback)` chains another callback. A crash
    before `commit` leaves a temporary folder that the run's next start removes."""

    def __init__(self, directory: str | os.PathLike | None):
        self.writer = run_predictions.PredictionsWriter(directory) if directory else None

    def __call__(self, kind: str, key: Any, outputs: Mapping[str, np.ndarray]) -> None:
        if self.writer is not None:
            self.writer.add(kind, key, outputs)

    def also(self, callback: OnPredictions | None) -> OnPredictions:
        """One callback calling this saver, then `callback`."""
        def both(kind: str, key: Any, outputs: Mapping[str, np.ndarray]) -> None:
            self(kind, key, outputs)
            if callback is not None:
                callback(kind, key, outputs)
        return both

    def commit(self, **facts: Any) -> None:
        """Put the predictions in place, with JSON manifest `facts` (step, num_classes, ...)."""
        if self.writer is not None:
            logging.info("saved predictions to %s", self.writer.commit(**facts))

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()


def ood_key(dataset: str, kind: str) -> str:
    """The name in `ood/<name>_<metric>`: the dataset for the default score (1 - max
    probability, the reference's keys), `<dataset>_<kind>` for the others."""
    return dataset if kind == "msp" else f"{dataset}_{kind}"


def check_finite(outputs: Mapping[str, np.ndarray], what: str) -> None:
    """NonFiniteError when the model's evaluation outputs (logits, probabilities) hold NaN or infinity."""
    arrays = [outputs[k].reshape(len(outputs[k]), -1) for k in ("logits", "probs") if k in outputs]
    bad = int(np.sum(~np.all([np.isfinite(a).all(axis=1) for a in arrays], axis=0)))
    if bad:
        raise NonFiniteError(f"the model's outputs on {what} are not finite for {bad} of "
                             f"{len(arrays[0])} examples")


class NonFiniteError(FloatingPointError):
    """Training or evaluation produced NaN or infinite values."""


def data_fingerprint(name: str, dataset: Iterable, strategy: tf.distribute.Strategy) -> str:
    """sha256 of an evaluation split as the model sees it: ids, labels and features, in id order.

    Identifies the exact data and preprocessing in the run record; padded rows are skipped.
    """
    ids, labels, sums = [], [], []
    gather = tf.function(lambda batch: distribution.gather_in_graph(strategy, batch))
    for batch in dataset:
        batch = gather({k: v for k, v in batch.items() if k in ("id", "labels", "features", "mask")})
        local = {k: distribution.host_values(strategy, v) for k, v in batch.items()}
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
             corrupted: Mapping[tuple[str, int], Iterable] | None = None,
             ood_score_kinds: Sequence[str] = ("msp",),
             on_predictions: Callable[[str, Any, Mapping[str, np.ndarray]], None] | None = None,
             shifted: Mapping[str, Iterable] | None = None,
             ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Flat metrics over the clean test set, each OOD set and each corrupted set.

    `predict` maps a dataset to masked-out predictions (see `loop.predict`). An OOD set
    holds only its OOD examples (`ub.datasets.ood` sets with include_in_distribution=False,
    CLINC's out-of-scope test split): it is scored together with the clean test set's
    predictions, in-distribution first (`runs.predictions.with_in_distribution`), with each of
    `ood_score_kinds`; an OOD set whose every example has a class of the model (CLINC's
    combined test set: out-of-scope is class 150) also gets the classification metrics
    over all its examples, `ood/<name>_accuracy`, ... With a member axis the clean set
    also gets the ensemble and per-member metrics. Also reports `test/ms_per_example`
    (clean-set inference time) and `test/num_examples`. Raises NonFiniteError when the
    model outputs NaN or infinity. `on_predictions(kind, key, outputs)` receives each set's
    checked predictions: ("test", None, ...), ("ood", name, ...), ("corrupted", (type,
    severity), ...) (e.g. `runs.predictions.PredictionsWriter.add`). `shifted` sets (other
    test sets of the same classes, e.g. ImageNet-A, -R, -V2) get the classification metrics as
    `<name>/<metric>` (their predictions go to `on_predictions` as ("shifted", name, ...)).
    Returns the metrics and the clean predictions.
    """
    save = on_predictions or (lambda kind, key, outputs: None)
    clean, seconds = timed_predict(predict, test)
    check_finite(clean, "the test set")
    save("test", None, clean)
    n = len(clean["labels"])
    ood_results_by_name = {}
    for name, ds in (ood or {}).items():
        outputs = predict(ds)
        check_finite(outputs, f"the OOD set {name}")
        outputs = run_predictions.with_in_distribution(clean, outputs, name)
        save("ood", name, outputs)
        for kind, result in ood_results(outputs, ood_score_kinds).items():
            ood_results_by_name[ood_key(name, kind)] = result
        if np.all(outputs["labels"] >= 0):  # Every example has a class: classify them all too.
            ood_results_by_name.setdefault(name, {}).update(classification_results(outputs, num_classes))
    corrupted_results = {}
    progress = Progress(len(corrupted or {}), unit="corrupted set")
    for key, ds in (corrupted or {}).items():
        outputs = predict(ds)
        check_finite(outputs, f"the corrupted set {key[0]}_{key[1]}")
        save("corrupted", key, outputs)
        corrupted_results[key] = classification_results(outputs, num_classes)
        progress.update(len(corrupted_results), force=len(corrupted_results) == len(corrupted))
    flat = ub_metrics.flatten_results(classification_results(clean, num_classes, per_member=True),
                                      ood=ood_results_by_name, corrupted=corrupted_results or None)
    for name, ds in (shifted or {}).items():
        outputs = predict(ds)
        check_finite(outputs, f"the test set {name}")
        save("shifted", name, outputs)
        flat.update(ub_metrics.flatten_results(classification_results(outputs, num_classes), split=name))
    flat["test/ms_per_example"] = 1000.0 * seconds / n
    flat["test/num_examples"] = float(n)
    return flat, clean
