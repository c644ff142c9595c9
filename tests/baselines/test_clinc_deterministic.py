"""baselines/clinc_intent/deterministic.py end to end on a tiny CLINC150-format set and a
tiny random BERT folder.

Runs the script as a subprocess (as a user would): the reference protocol's outputs (151
classes, in-domain test, OOD and accuracy over the combined test set, recomputed here from
the reloaded model), exact resume after SIGKILL, each replica's own share of every global
batch and 2 mirrored replicas vs 1 device, and bad flags refused before anything is written.
"""
import time

import numpy as np
import pytest

import clinc_e2e
import script_runs
from clinc_e2e import NUM_COMBINED, NUM_OOS_TEST, NUM_TEST, NUM_TRAIN, deterministic_args, without_timing
from uncertainty_baselines.runs import checkpoint, summaries

STEPS_PER_EPOCH = NUM_TRAIN // 32


def test_outputs_follow_the_reference_protocol(clinc_reference_run):
    out_dir, out = clinc_reference_run
    record = clinc_e2e.record(out_dir)
    for key in ("flags", "packages", "git", "hardware", "data_fingerprint", "seed", "wall_time_s", "model"):
        assert record[key] is not None, key
    assert record["model"]["name"] == "bert_classifier"
    assert record["model"]["kwargs"]["num_classes"] == 151 and record["model"]["kwargs"]["token_ids_only"]
    assert record["train_examples"] == NUM_TRAIN and record["steps"] == 2 * STEPS_PER_EPOCH
    metrics = record["metrics"]
    assert metrics["test/num_examples"] == NUM_TEST  # In-domain only; the last batch is padded, not dropped.
    for key in ("test/accuracy", "test/ece", "ood/combined_auroc", "ood/combined_aupr_in",
                "ood/combined_aupr_out", "ood/combined_fpr_at_95_tpr", "ood/combined_accuracy", "ood/combined_ece"):
        assert 0 <= metrics[key] <= 1, key
    for key in ("test/negative_log_likelihood", "test/brier", "ood/combined_negative_log_likelihood", "train/loss"):
        assert np.isfinite(metrics[key]) and metrics[key] > 0, key
    assert metrics["train/learning_rate"] == 0.0  # Linear decay to 0 at the last step.
    lines = summaries.read_metrics(out_dir)
    assert [(r["epoch"], r["step"]) for r in lines] == [(1, STEPS_PER_EPOCH), (2, 2 * STEPS_PER_EPOCH)]
    assert [p.name for p in checkpoint.list_checkpoints(out_dir / "checkpoints")] == [
        "ckpt-000000009", "ckpt-000000018"]
    assert "ood/combined_auroc" in out and "ood/combined_accuracy" in out  # The final table.


def test_reloaded_model_reproduces_the_combined_set_metrics(clinc_reference_run, clinc_data_dir):
    """ub.models.load rebuilds the model; its 1 - max probability and Dempster-Shafer scores
    over all 120 combined test queries (out-of-scope positive) give the recorded OOD metrics, its predictions the
    recorded accuracies over the combined and the in-domain queries."""
    import uncertainty_baselines as ub
    out_dir, _ = clinc_reference_run
    metrics = clinc_e2e.record(out_dir)["metrics"]
    model = ub.models.load(out_dir)
    saved = checkpoint.load(checkpoint.list_checkpoints(out_dir / "checkpoints")[-1]).parts["model"]
    for var, value in zip(model.variables, saved.values()):
        np.testing.assert_array_equal(np.asarray(var), value)
    combined = ub.datasets.get("clinc_intent", "test", data_mode="all", data_dir=str(clinc_data_dir))
    batches = [{k: v.numpy() for k, v in b.items()} for b in combined.load(batch_size=64)]
    keep = np.concatenate([b["mask"] for b in batches]) > 0
    labels = np.concatenate([b["labels"] for b in batches])[keep]
    logits = np.concatenate([np.asarray(model(b["features"], training=False)) for b in batches])[keep]
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    assert len(labels) == NUM_COMBINED and np.sum(labels == 150) == NUM_OOS_TEST
    # The tiny run learns nothing: the scores of all 120 queries lie within 1e-5 of each
    # other, so the run's batches and float32 rounding reorder a few near-ties. One
    # reordered (in-domain, out-of-scope) pair moves AUROC by 1 / (90 x 30) = 4e-4 and
    # the FPR at 95% TPR by at most 1 / 90: allow about ten pairs, two in-domain queries.
    for kind, score in (("", 1 - probs.max(1)),
                        ("dempster_shafer_", ub.metrics.ood_score(logits, "dempster_shafer", from_logits=True))):
        ood = ub.metrics.OODMetrics()
        ood.add_batch(score, is_ood=labels == 150)
        for key, value in ood.result().items():
            tolerance = 0.02 if key == "fpr_at_95_tpr" else 5e-3
            assert metrics[f"ood/combined_{kind}{key}"] == pytest.approx(value, abs=tolerance), kind + key
    correct = probs.argmax(1) == labels
    assert metrics["ood/combined_accuracy"] == pytest.approx(correct.mean())
    assert metrics["test/accuracy"] == pytest.approx(correct[labels != 150].mean())


def test_sigkill_then_restart_gives_the_same_metrics(clinc_reference_run, clinc_data_dir, clinc_bert_dir, tmp_path):
    ref_dir, _ = clinc_reference_run
    out_dir = tmp_path / "killed"
    out = script_runs.kill_after_first_checkpoint_then_rerun(
        "clinc_intent", "deterministic", deterministic_args(clinc_bert_dir), clinc_data_dir, out_dir)
    assert "resumed from" in out
    ref, got = clinc_e2e.record(ref_dir), clinc_e2e.record(out_dir)
    assert without_timing(got["metrics"]) == without_timing(ref["metrics"])  # Exactly equal.
    assert got["data_fingerprint"] == ref["data_fingerprint"]
    ref_w = checkpoint.load(checkpoint.list_checkpoints(ref_dir / "checkpoints")[-1]).parts
    got_w = checkpoint.load(checkpoint.list_checkpoints(out_dir / "checkpoints")[-1]).parts
    for part in ("model", "optimizer"):
        for k in ref_w[part]:
            np.testing.assert_array_equal(got_w[part][k], ref_w[part][k])


def test_each_replica_gets_its_own_share_of_every_global_batch(clinc_data_dir):
    """With 2 replicas, the two halves of each global batch of 8 hold different examples
    and together the 1-device batch, epoch after epoch."""
    import uncertainty_baselines as ub
    from uncertainty_baselines.training import distribution
    strategy = distribution.get_strategy("mirrored", num_cores=2)
    train = ub.datasets.get("clinc_intent", "train", data_dir=str(clinc_data_dir), seed=7)
    one_device, two_replicas = iter(train.load(batch_size=8)), iter(train.load(batch_size=8, strategy=strategy))
    for _ in range(2 * NUM_TRAIN // 8):  # Two epochs.
        ids = next(one_device)["id"].numpy()
        first, second = (t.numpy() for t in strategy.experimental_local_results(next(two_replicas)["id"]))
        assert len(first) == len(second) == 4 and not set(first) & set(second)
        assert sorted([*first, *second]) == sorted(ids)


def test_two_mirrored_replicas_match_one_device(clinc_reference_run, clinc_data_dir, clinc_bert_dir, tmp_path):
    ref_dir, _ = clinc_reference_run
    clinc_e2e.run("deterministic", deterministic_args(clinc_bert_dir, "--strategy=mirrored", "--num_cores=2"),
                  clinc_data_dir, tmp_path / "mirrored")
    got, ref = clinc_e2e.record(tmp_path / "mirrored"), clinc_e2e.record(ref_dir)
    assert got["num_replicas"] == 2 and got["data_fingerprint"] == ref["data_fingerprint"]
    for key, value in without_timing(ref["metrics"]).items():
        # The OOD scores of this untrained model are near-ties that float summation over 2
        # replicas may reorder (see the reload test): ranking metrics get its tolerance.
        ranking = key.startswith("ood/") and ("_au" in key or "fpr" in key)
        tolerance = (0.02 if "fpr" in key else 5e-3) if ranking else 1e-5
        assert got["metrics"][key] == pytest.approx(value, rel=0 if ranking else 1e-4, abs=tolerance), key


@pytest.mark.parametrize("args,messages", [
    (["--learning_rate=-1", "--warmup_proportion=1", "--dataset=cifar10", "--bert_dir=/nonexistent"],
     ["--learning_rate must be > 0", "--warmup_proportion must be in [0, 1)",
      "--dataset='cifar10' is not a text set", "--bert_dir: bert_dir /nonexistent is not a directory"]),
    (["--strategy=mirrored", "--num_cores=2", "--batch_size=33"], ["--batch_size=33 is not divisible by the 2 replicas"]),
])
def test_bad_flags_fail_before_any_work(args, messages, clinc_data_dir, clinc_bert_dir, tmp_path):
    start = time.time()
    code, out = clinc_e2e.run("deterministic", deterministic_args(clinc_bert_dir, *args), clinc_data_dir,
                              tmp_path / "bad", expect_ok=False)
    assert code != 0
    for message in messages:
        assert message in out, message
    assert not (tmp_path / "bad").exists()  # Nothing written.
    assert time.time() - start < 60


def test_data_tokenised_with_another_vocabulary_is_refused(clinc_data_dir, clinc_bert_dir, tmp_path):
    import shutil
    other = tmp_path / "bert"
    shutil.copytree(clinc_bert_dir, other)
    tokens = (other / "vocab.txt").read_text(encoding="utf-8").split("\n")
    tokens[2000] = "[another]"  # Same size, so the folder itself is consistent.
    (other / "vocab.txt").write_text("\n".join(tokens), encoding="utf-8")
    code, out = clinc_e2e.run("deterministic", deterministic_args(other), clinc_data_dir, tmp_path / "out",
                              expect_ok=False)
    assert code != 0 and "tokenised with another vocabulary" in out
    assert not (tmp_path / "out").exists()
