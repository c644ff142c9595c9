"""Streaming evaluation with `ub.metrics` over padded-and-masked NumPy batches.

Every evaluation batch is predicted on the devices and scored on the host as it arrives
(the next batch is dispatched before the previous one is read back); rows with mask 0 (the
padding of the last batch) are dropped before any metric sees them, so every example is
scored exactly once. Results carry the suite's flat names (`ub.metrics.flatten_results`):
`test/accuracy`, `test/ece`, ..., with a member axis also the ensemble metrics
(`test/ensemble_negative_log_likelihood`, `test/disagreement`, ...) and
`test/<metric>_member_<i>`; `ood/<name>_auroc` (OOD positive, score 1 - max probability;
`ood/<name>_<kind>_...` for other score kinds), where an OOD set holds only its OOD examples
and the clean test set's scores are its in-distribution half (as in the Keras baselines, so
the test set is predicted once); `test/<metric>_<type>_<severity>` and the corrupted means.
Each evaluation also gives what a report draws (runs/curves.py): the reliability diagrams of
the test and corrupted sets and the ROC curve of every OOD set and score kind.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Mapping, Sequence

import jax
import numpy as np

from uncertainty_baselines import metrics as ub_metrics
from uncertainty_baselines.jax_training.loop import NonFiniteError, put_batch
from uncertainty_baselines.runs import curves as run_curves
from uncertainty_baselines.runs import predictions as run_predictions
from uncertainty_baselines.runs.run_record import fingerprint

PredictFn = Callable[[Any, jax.Array], dict[str, jax.Array]]
# on_predictions(kind 'test' | 'ood' | 'corrupted', key, per-example arrays): e.g. the
# `runs.predictions.PredictionsWriter.add` of a run with --save_predictions.
OnPredictions = Callable[[str, Any, Mapping[str, np.ndarray]], None]
KEPT = ("logits", "id", "labels", "is_in_distribution")


class _Scores:
    """The streaming metrics of one evaluation set."""

    def __init__(self, num_classes: int, ood_kinds: Sequence[str] | None, classify: bool, what: str,
                 keep: bool = False):
        self.what, self.num_classes = what, num_classes
        self.kept: dict[str, list[np.ndarray]] | None = {} if keep else None
        self.clean = ub_metrics.ClassificationMetrics(num_classes=num_classes) if classify else None
        self.ensemble: ub_metrics.EnsembleMetrics | None = None
        self.members: list[ub_metrics.ClassificationMetrics] = []
        self.ood_scores: dict[str, list[np.ndarray]] = {kind: [] for kind in (ood_kinds or ())}
        self.count = 0
        self.ids: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.pixel_sums: list[np.ndarray] = []

    def add(self, out: Mapping[str, np.ndarray], batch: Mapping[str, np.ndarray], with_members: bool,
            with_fingerprint: bool) -> None:
        keep = batch["mask"] > 0
        if not keep.any():
            return
        out = {k: v[keep] for k, v in out.items()}
        for key in ("logits", "probs"):
            if not np.isfinite(out[key]).all():
                raise NonFiniteError(f"the model's outputs on {self.what} are not finite")
        labels = batch["labels"][keep]
        self.count += len(labels)
        if self.kept is not None:
            rows = {"logits": out["logits"], **{k: batch[k][keep] for k in KEPT[1:] if k in batch}}
            for key, value in rows.items():
                self.kept.setdefault(key, []).append(value)
        if self.clean is not None:
            self.clean.add_batch(out["probs"], label=labels)
            if with_members and "member_probs" in out:
                members = np.moveaxis(out["member_probs"], 1, 0)  # [M, N, K], as ub.metrics takes them.
                if self.ensemble is None:
                    self.ensemble = ub_metrics.EnsembleMetrics()
                    self.members = [ub_metrics.ClassificationMetrics(num_classes=self.num_classes)
                                    for _ in range(len(members))]
                self.ensemble.add_batch(members, label=labels)
                for metric, probs in zip(self.members, members):
                    metric.add_batch(probs, label=labels)
        if "is_in_distribution" in batch and np.any(batch["is_in_distribution"][keep] != 0):
            raise ValueError(f"{self.what} holds in-distribution examples: load only its OOD examples "
                             "(ub.datasets.ood.get_ood(..., include_in_distribution=False))")
        for kind, scores in self.ood_scores.items():
            scores.append(ood_score(out, kind))
        if with_fingerprint:
            features = batch["features"][keep]
            bits = features.view(np.int32) if features.dtype == np.float32 else features
            self.ids.append(batch["id"][keep])
            self.labels.append(labels)
            self.pixel_sums.append(bits.reshape(len(bits), -1).astype(np.int64).sum(axis=1))

    def classification(self) -> dict[str, float]:
        results = self.clean.result()
        if self.ensemble is not None:
            results.update(self.ensemble.result())
            for i, member in enumerate(self.members):
                results.update({f"{k}_member_{i}": v for k, v in member.result().items()})
        return results

    def reliability(self) -> dict[str, list]:
        """The reliability-diagram record (runs/curves.py) of the set's mean predictions."""
        return run_curves.reliability_entry(self.clean.reliability_diagram())

    def scores(self, kind: str) -> np.ndarray:
        """The per-example OOD scores of `kind`, in order."""
        return np.concatenate(self.ood_scores[kind])

    def predictions(self) -> dict[str, np.ndarray]:
        """The kept per-example arrays (logits, id, labels[, is_in_distribution]) in order."""
        return {k: np.concatenate(v) for k, v in (self.kept or {}).items()}

    def fingerprint(self, name: str) -> str:
        """sha256 of the split as the model saw it: ids, labels and the features' bit sums in
        id order (the Keras baselines' `data_fingerprint`, so the two agree on the same data)."""
        ids, labels, sums = (np.concatenate(a) for a in (self.ids, self.labels, self.pixel_sums))
        order = np.argsort(ids, kind="stable")
        return fingerprint(name, *(np.ascontiguousarray(a[order]).tobytes() for a in (ids, labels, sums)))


def ood_score(out: Mapping[str, np.ndarray], kind: str) -> np.ndarray:
    """Per-example OOD score of `kind` (ub.metrics.ood_score) from one batch's predictions:
    probability kinds from the (members' mean) probabilities, logit kinds from the (members'
    mean) logits, mutual information from the member probabilities."""
    if kind == "mutual_information":
        if "member_probs" not in out:
            raise ValueError("the mutual_information OOD score needs a model with a member axis")
        return ub_metrics.ood_score(np.moveaxis(out["member_probs"], 1, 0), kind)
    if kind in ub_metrics.LOGIT_SCORE_KINDS:
        logits = out["logits"]
        return ub_metrics.ood_score(logits.mean(axis=1) if logits.ndim == 3 else logits, kind, from_logits=True)
    return ub_metrics.ood_score(out["probs"], kind)


def ood_results(clean: _Scores, ood: _Scores, name: str) -> tuple[dict[str, dict[str, float]],
                                                                  dict[str, dict[str, Any]]]:
    """The OOD metrics (keyed as the ood/ metrics: `name`, `name_<kind>`) and ROC-curve records
    of OOD set `name` for each of `ood`'s score kinds: the clean test set's scores are the
    in-distribution examples, `ood`'s the OOD ones (positive)."""
    results, records = {}, {}
    for kind in ood.ood_scores:
        metric = ub_metrics.OODMetrics()
        metric.add_batch(clean.scores(kind), is_ood=np.zeros(clean.count, bool))
        metric.add_batch(ood.scores(kind), is_ood=np.ones(ood.count, bool))
        key = name if kind == "msp" else f"{name}_{kind}"
        results[key] = metric.result()
        curve = metric.roc_curve(max_points=run_curves.ROC_POINTS)
        records[key] = run_curves.roc_entry(curve["fpr"], curve["tpr"], dataset=name, kind=kind, num_in=clean.count,
                                            num_ood=ood.count)
    return results, records


def score_dataset(predict: PredictFn, params: Any, batches: Iterable[Mapping[str, np.ndarray]], mesh: Any, *,
                  num_classes: int, what: str, ood_kinds: Sequence[str] | None = None, classify: bool = True,
                  with_members: bool = False, with_fingerprint: bool = False, keep: bool = False) -> _Scores:
    """Predict every batch and feed its real rows to the metrics (one batch in flight);
    `keep` also keeps the per-example logits, ids and labels."""
    scores = _Scores(num_classes, ood_kinds, classify, what, keep)
    pending = None
    for batch in batches:
        images, _ = put_batch(batch, mesh)
        out = predict(params, images)
        if pending is not None:
            scores.add(jax.device_get(pending[0]), pending[1], with_members, with_fingerprint)
        pending = (out, batch)
    if pending is None:
        raise ValueError(f"{what} yielded no batches")
    scores.add(jax.device_get(pending[0]), pending[1], with_members, with_fingerprint)
    if scores.count == 0:
        raise ValueError(f"{what} has no examples with mask 1")
    return scores


def evaluate(predict: PredictFn, params: Any, mesh: Any, *, num_classes: int, test: Callable[[], Iterable],
             ood: Mapping[str, Callable[[], Iterable]] | None = None,
             corrupted: Mapping[tuple[str, int], Callable[[], Iterable]] | None = None,
             ood_kinds: Sequence[str] = ("msp",), test_name: str = "test",
             on_predictions: OnPredictions | None = None) -> tuple[dict[str, float], str, dict[str, Any]]:
    """Flat metrics over the clean test set, each OOD set (its OOD examples only:
    `ub.datasets.ood.get_ood(..., include_in_distribution=False)`) and each corrupted set (each a
    function returning fresh batches), plus `test/ms_per_example` and `test/num_examples`;
    returns them, the clean set's data fingerprint and the curves record (runs/curves.py).
    `on_predictions` receives each set's per-example predictions (an OOD set's with the test
    set's first, `runs.predictions.with_in_distribution`)."""
    keep = on_predictions is not None
    start = time.perf_counter()
    clean = score_dataset(predict, params, test(), mesh, num_classes=num_classes, what="the test set",
                          ood_kinds=ood_kinds if ood else None, with_members=True, with_fingerprint=True, keep=keep)
    seconds = time.perf_counter() - start
    if keep:
        on_predictions("test", None, clean.predictions())
    curves: dict[str, dict[str, Any]] = {"reliability": {"test": clean.reliability()}, "roc": {}}
    ood_metrics: dict[str, dict[str, float]] = {}
    for name, batches in (ood or {}).items():
        scores = score_dataset(predict, params, batches(), mesh, num_classes=num_classes, what=f"the OOD set {name}",
                               ood_kinds=ood_kinds, classify=False, keep=keep)
        results, records = ood_results(clean, scores, name)
        ood_metrics.update(results)
        curves["roc"].update(records)
        if keep:
            on_predictions("ood", name, run_predictions.with_in_distribution(clean.predictions(), scores.predictions(),
                                                                             name))
    corrupted_results = {}
    for key, batches in (corrupted or {}).items():
        scores = score_dataset(predict, params, batches(), mesh, num_classes=num_classes,
                               what=f"the corrupted set {key[0]}_{key[1]}", keep=keep)
        if keep:
            on_predictions("corrupted", key, scores.predictions())
        corrupted_results[key] = scores.classification()
        curves["reliability"][f"test/{key[0]}_{key[1]}"] = scores.reliability()
    flat = ub_metrics.flatten_results(clean.classification(), ood=ood_metrics, corrupted=corrupted_results or None)
    flat["test/ms_per_example"] = 1000.0 * seconds / clean.count
    flat["test/num_examples"] = float(clean.count)
    return flat, clean.fingerprint(test_name), curves
