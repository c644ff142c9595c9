"""baselines/clinc_intent/sngp.py end to end on the tiny CLINC set: the trained pooler's
operator norm at its bound, the GP output layer, the precision reset at each epoch start,
its OOD score kinds on the combined test set, and exact resume from a checkpoint (the
precision included)."""
import numpy as np
import pytest

import clinc_e2e
from clinc_e2e import NUM_TEST, NUM_TRAIN, without_timing
from uncertainty_baselines.runs import checkpoint

RIDGE, INDUCING, BOUND = 15.0, 64, 0.25  # BOUND: below the tiny pooler's norm (~0.57)


def sngp_args(bert_dir):
    return [f"--bert_dir={bert_dir}", "--batch_size=32", "--eval_batch_size=64", "--train_epochs=2",
            f"--num_inducing={INDUCING}", f"--spec_norm_bound={BOUND}", "--learning_rate=5e-3",
            "--steps_per_loop=3", "--log_interval_s=0", "--seed=5"]


@pytest.fixture(scope="module")
def sngp_run(clinc_data_dir, clinc_bert_dir, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("clinc_sngp") / "reference"
    clinc_e2e.run("sngp", sngp_args(clinc_bert_dir), clinc_data_dir, out_dir)
    return out_dir


def test_gp_layer_precision_covers_the_last_epoch_and_ood_scores(sngp_run):
    import uncertainty_baselines as ub
    record = clinc_e2e.record(sngp_run)
    metrics = record["metrics"]
    assert record["method"] == "sngp" and record["model"]["name"] == "bert_sngp"
    assert record["model"]["kwargs"]["gp_ridge_penalty"] == RIDGE
    assert metrics["test/num_examples"] == NUM_TEST
    for kind in ("", "_dempster_shafer"):
        assert 0 <= metrics[f"ood/combined{kind}_auroc"] <= 1, kind
    model = ub.models.load(sngp_run)
    assert ub.layers.reset_covariances(model) == 1
    saved = checkpoint.load(checkpoint.list_checkpoints(sngp_run / "checkpoints")[-1]).parts["model"]
    [precision] = [v for k, v in saved.items() if k.endswith("/precision")]
    # Ridge * I plus Phi^T Phi summed over one epoch's 288 examples (each adds a trace of
    # about D / 2: D unscaled cos features), not over both epochs' 576.
    epoch_trace = (NUM_TRAIN // 32) * 32 * INDUCING / 2
    assert 0.7 * epoch_trace < np.trace(precision) - RIDGE * INDUCING < 1.3 * epoch_trace


def test_resume_from_the_first_checkpoint_is_exact(sngp_run, clinc_data_dir, clinc_bert_dir, tmp_path):
    clinc_e2e.resume_from_first_checkpoint("sngp", sngp_args(clinc_bert_dir), clinc_data_dir, sngp_run, tmp_path / "resumed")
    got, ref = clinc_e2e.record(tmp_path / "resumed"), clinc_e2e.record(sngp_run)
    assert without_timing(got["metrics"]) == without_timing(ref["metrics"])


def test_the_trained_pooler_is_within_its_spectral_bound(sngp_run):
    import uncertainty_baselines as ub
    model = ub.models.load(sngp_run)
    [pooler] = [layer for layer in model._flatten_layers() if layer.name == "pooled_dense_spectral_norm"]
    raw = np.linalg.svd(np.asarray(pooler.kernel), compute_uv=False)[0]
    bounded = np.linalg.svd(np.asarray(pooler.normalized_kernel()), compute_uv=False)[0]
    assert raw > 1.5 * BOUND  # the bound is active, so the check below can fail
    assert BOUND * 0.9 < bounded < BOUND * 1.02  # power iteration's estimate, one step a batch
