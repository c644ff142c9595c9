"""baselines/clinc_intent/ensemble.py end to end: two tiny deterministic runs (one trained by
the ensemble itself) evaluated as one ensemble (member metrics equal each run's own, OOD score kinds on the combined test
set), and member directories that cannot form an ensemble refused with their name, before
anything is written."""
import json
import shutil

import pytest

import clinc_e2e
from uncertainty_baselines.runs import checkpoint


@pytest.fixture(scope="module")
def members(clinc_reference_run, clinc_data_dir, clinc_bert_dir, tmp_path_factory):
    """The reference run (seed 7) and a run with seed 8 that an ensemble trained itself
    (--train_missing_members: seed --seed + the directory's position)."""
    root = tmp_path_factory.mktemp("clinc_members")
    run_dirs = [clinc_reference_run[0], root / "seed8"]
    clinc_e2e.run("ensemble", clinc_e2e.deterministic_args(
        clinc_bert_dir, "--train_missing_members", "--ensemble_size=2", f"--run_dirs={','.join(map(str, run_dirs))}"),
        clinc_data_dir, root / "ensemble")
    return run_dirs


def ensemble(run_dirs, data_dir, bert_dir, output_dir, expect_ok=True):
    return clinc_e2e.run("ensemble", [f"--run_dirs={','.join(map(str, run_dirs))}", "--ensemble_size=2",
                                      f"--bert_dir={bert_dir}", "--eval_batch_size=64"],
                         data_dir, output_dir, expect_ok)


def test_ensemble_of_two_runs(members, clinc_data_dir, clinc_bert_dir, tmp_path):
    ensemble(members, clinc_data_dir, clinc_bert_dir, tmp_path / "ens")
    record = clinc_e2e.record(tmp_path / "ens")
    metrics = record["metrics"]
    assert record["method"] == "ensemble" and record["members"] == [str(m) for m in members]
    trained = clinc_e2e.record(members[1])
    assert trained["method"] == "deterministic" and trained["seed"] == 8
    for i, member in enumerate(members):
        own = clinc_e2e.record(member)["metrics"]
        for key in ("accuracy", "negative_log_likelihood", "ece"):
            assert metrics[f"test/{key}_member_{i}"] == pytest.approx(own[f"test/{key}"], abs=1e-6), (i, key)
    assert metrics["test/gibbs_negative_log_likelihood"] >= metrics["test/ensemble_negative_log_likelihood"]
    for kind in ("", "_entropy", "_mutual_information", "_dempster_shafer"):
        assert 0 <= metrics[f"ood/combined{kind}_auroc"] <= 1, kind
    assert 0 <= metrics["ood/combined_accuracy"] <= 1


def test_members_that_do_not_fit_are_refused_by_name(members, clinc_data_dir, clinc_bert_dir, tmp_path):
    other_model = tmp_path / "other_model"
    shutil.copytree(members[1], other_model)
    record = clinc_e2e.record(other_model)
    record["model"]["kwargs"]["dropout_rate"] = 0.3
    (other_model / "run.json").write_text(json.dumps(record))
    code, out = ensemble([members[0], other_model], clinc_data_dir, clinc_bert_dir, tmp_path / "a", expect_ok=False)
    assert code != 0 and f"ensemble member {other_model} has model" in out
    broken = tmp_path / "broken"
    shutil.copytree(members[1], broken)
    weights = checkpoint.list_checkpoints(broken / "checkpoints")[-1] / "model.npz"
    weights.write_bytes(weights.read_bytes()[:-100])  # Truncated.
    code, out = ensemble([members[0], broken], clinc_data_dir, clinc_bert_dir, tmp_path / "b", expect_ok=False)
    assert code != 0 and f"ensemble member {broken}" in out and "model.npz" in out
    assert not any((tmp_path / name).exists() for name in "ab")  # Nothing written.
