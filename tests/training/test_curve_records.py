"""Evaluation curves (runs/curves.py, evaluation.CurveRecorder): what a report draws is
recorded by the evaluation itself, consistent with the metrics it reports."""
import json

import numpy as np
import pytest

from uncertainty_baselines.runs import curves
from uncertainty_baselines.training import evaluation


def synthetic_outputs(n, k, seed, ood=0, members=0):
    """Predictions as loop.predict returns them: probs/logits (with a member axis when
    members > 0), labels, ids; the last `ood` rows are OOD (label -1; `ood` = n: an OOD
    set's OOD examples, as evaluation.evaluate takes them)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    shape = (n, members, k) if members else (n, k)
    logits = rng.normal(size=shape) * 2
    logits[np.arange(n), ..., labels] += 2.0
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    out = {"logits": logits.astype(np.float32), "labels": labels, "id": np.arange(n)}
    if members:
        out["member_probs"] = probs.astype(np.float32)
        out["probs"] = probs.mean(axis=1).astype(np.float32)
    else:
        out["probs"] = probs.astype(np.float32)
    if ood:
        out["is_in_distribution"] = np.r_[np.ones(n - ood, int), np.zeros(ood, int)]
        out["labels"] = np.where(out["is_in_distribution"] == 1, labels, -1)
    return out


def evaluate_with_curves(members=0, kinds=("msp",)):
    sets = {"test": synthetic_outputs(500, 4, 0, members=members),
            "mnist": synthetic_outputs(300, 4, 1, ood=300, members=members),
            ("contrast", 1): synthetic_outputs(500, 4, 2, members=members),
            ("contrast", 3): synthetic_outputs(500, 4, 3, members=members)}
    recorder = evaluation.CurveRecorder(4, kinds)
    flat, _ = evaluation.evaluate(lambda ds: sets[ds], num_classes=4, test="test", ood={"mnist": "mnist"},
                                  corrupted={k: k for k in sets if isinstance(k, tuple)},
                                  ood_score_kinds=kinds, on_predictions=recorder)
    return flat, recorder.curves


def ece_from_bins(entry):
    count = np.array(entry["count"])
    conf = np.array([c or 0.0 for c in entry["confidence"]])
    acc = np.array([a or 0.0 for a in entry["accuracy"]])
    return float(np.sum(count * np.abs(acc - conf)) / count.sum())


def test_recorded_curves_agree_with_the_reported_metrics():
    flat, rec = evaluate_with_curves(members=3, kinds=("msp", "entropy", "mutual_information"))
    assert set(rec["reliability"]) == {"test", "test/contrast_1", "test/contrast_3"}
    test = rec["reliability"]["test"]
    assert len(test["count"]) == 15 and sum(test["count"]) == 500
    assert ece_from_bins(test) == pytest.approx(flat["test/ece"], abs=1e-5)
    acc = sum(c * a for c, a in zip(test["count"], test["accuracy"]) if c) / 500
    assert acc == pytest.approx(flat["test/accuracy"], abs=1e-5)
    assert ece_from_bins(rec["reliability"]["test/contrast_3"]) == pytest.approx(flat["test/ece_contrast_3"], abs=1e-5)
    assert set(rec["roc"]) == {"mnist", "mnist_entropy", "mnist_mutual_information"}
    for key, roc in rec["roc"].items():
        assert (roc["num_in"], roc["num_ood"]) == (500, 300)  # The test set's 500, then the OOD 300.
        assert roc["fpr"][0] == roc["tpr"][0] == 0 and roc["fpr"][-1] == roc["tpr"][-1] == 1
        assert len(roc["fpr"]) <= curves.ROC_POINTS
        # Thinned to <= 201 vertices of the exact curve: its area is the AUROC within 1/200.
        assert np.trapezoid(roc["tpr"], roc["fpr"]) == pytest.approx(flat[f"ood/{key}_auroc"], abs=5e-3)
    assert rec["roc"]["mnist_entropy"]["kind"] == "entropy" and rec["roc"]["mnist"]["dataset"] == "mnist"
    json.dumps(rec, allow_nan=False)  # Plain JSON: empty bins are null, never NaN.


def test_an_ood_set_with_classes_gets_its_reliability():
    out_of_scope = synthetic_outputs(200, 5, 4)
    out_of_scope["labels"][:] = 4  # class 4 = out of scope
    out_of_scope["is_in_distribution"] = np.zeros(200, int)
    recorder = evaluation.CurveRecorder(5)
    evaluation.evaluate(lambda ds: out_of_scope if ds == "ood" else synthetic_outputs(100, 5, 5), num_classes=5,
                        test="test", ood={"combined": "ood"}, on_predictions=recorder)
    assert sum(recorder.curves["reliability"]["ood/combined"]["count"]) == 300  # 100 in-scope + 200
    assert "combined" in recorder.curves["roc"]


def test_append_drops_redone_steps_and_a_torn_line(tmp_path):
    for step in (10, 20, 30):
        curves.append_curves(tmp_path, step, {"reliability": {}, "roc": {}}, epoch=step // 10)
    # A resume from the checkpoint at step 10 redoes step 20: the stale 20 and 30 go.
    curves.append_curves(tmp_path, 20, {"reliability": {"test": {"count": [1]}}, "roc": {}}, epoch=2)
    records = curves.read_curves(tmp_path)
    assert [r["step"] for r in records] == [10, 20] and records[1]["reliability"]["test"]["count"] == [1]
    with open(tmp_path / curves.CURVES_FILE, "a") as f:
        f.write('{"step": 30, "reliab')  # killed mid-write
    assert [r["step"] for r in curves.read_curves(tmp_path)] == [10, 20]
    curves.append_curves(tmp_path, 30, {"roc": {}}, epoch=3)
    lines = (tmp_path / curves.CURVES_FILE).read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [10, 20, 30]
    assert curves.read_curves(tmp_path / "absent") == []


def test_entries_round_and_null_empty_bins():
    entry = curves.reliability_entry({"count": np.array([0, 3]), "confidence": np.array([np.nan, 0.123456789]),
                                      "accuracy": np.array([np.nan, 2 / 3])})
    assert entry == {"count": [0, 3], "confidence": [None, 0.123457], "accuracy": [None, 0.666667]}
