"""baselines/clinc_intent/dropout.py end to end on the tiny CLINC set: MC dropout active at
test time (the passes differ, so the mutual information is positive), its OOD score kinds
on the combined test set, and exact resume from a checkpoint (the dropout RNG state
included)."""
import numpy as np
import pytest

import clinc_e2e
from clinc_e2e import NUM_TEST, without_timing


def dropout_args(bert_dir):
    return [f"--bert_dir={bert_dir}", "--batch_size=32", "--eval_batch_size=64", "--train_epochs=2",
            "--dropout_rate=0.2", "--num_dropout_samples=3", "--learning_rate=5e-3", "--steps_per_loop=3",
            "--log_interval_s=0", "--seed=3"]


@pytest.fixture(scope="module")
def dropout_run(clinc_data_dir, clinc_bert_dir, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("clinc_dropout") / "reference"
    clinc_e2e.run("dropout", dropout_args(clinc_bert_dir), clinc_data_dir, out_dir)
    return out_dir


def test_samples_at_test_time_and_its_ood_scores(dropout_run):
    import uncertainty_baselines as ub
    record = clinc_e2e.record(dropout_run)
    metrics = record["metrics"]
    assert record["method"] == "mc_dropout" and record["model"]["name"] == "bert_mc_dropout"
    assert metrics["test/num_examples"] == NUM_TEST
    assert metrics["test/mutual_information"] > 0  # The 3 passes differ.
    for kind in ("", "_entropy", "_mutual_information"):
        for metric in ("auroc", "aupr_in", "aupr_out", "fpr_at_95_tpr"):
            assert 0 <= metrics[f"ood/combined{kind}_{metric}"] <= 1, (kind, metric)
    assert 0 <= metrics["ood/combined_accuracy"] <= 1
    model = ub.models.load(dropout_run)
    ids = np.zeros((2, 32), np.int32)
    ids[:, :4] = [101, 2377, 2299, 102]  # [CLS] play song [SEP]
    assert not np.array_equal(np.asarray(model(ids, training=False)), np.asarray(model(ids, training=False)))


def test_resume_from_the_first_checkpoint_is_exact(dropout_run, clinc_data_dir, clinc_bert_dir, tmp_path):
    clinc_e2e.resume_from_first_checkpoint("dropout", dropout_args(clinc_bert_dir), clinc_data_dir, dropout_run, tmp_path / "resumed")
    got, ref = clinc_e2e.record(tmp_path / "resumed"), clinc_e2e.record(dropout_run)
    assert without_timing(got["metrics"]) == without_timing(ref["metrics"])
