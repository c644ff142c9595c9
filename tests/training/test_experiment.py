"""The shared epoch loop on synthetic data: exact resume, NaN stop, corrupted-set schedule."""
import numpy as np
import pytest

from synthetic_run import N_TEST, fit, interrupt_at, strip
from uncertainty_baselines.runs import checkpoint, summaries
from uncertainty_baselines.training import experiment


def test_resume_after_interruption_equals_uninterrupted(tmp_path):
    ref, ref_model = fit(tmp_path / "ref")
    # 6 steps per epoch in calls of 4 + 2: call 5 is the middle of epoch 3.
    with pytest.raises(KeyboardInterrupt):
        fit(tmp_path / "cut", wrap_train_fn=interrupt_at(5))
    assert [r["epoch"] for r in summaries.read_metrics(tmp_path / "cut")] == [1, 2]
    got, got_model = fit(tmp_path / "cut")
    assert strip(got) == strip(ref)
    for a, b in zip(ref_model.variables, got_model.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert [strip(r) for r in summaries.read_metrics(tmp_path / "cut")] == \
        [strip(r) for r in summaries.read_metrics(tmp_path / "ref")]
    assert ref["test/num_examples"] == N_TEST


@pytest.mark.parametrize("bad", [{"loss_sum": float("nan")}, {"terms": {"kl": float("inf")}}])
def test_nan_loss_or_infinite_kl_stops_and_keeps_last_good_checkpoint(tmp_path, bad):
    def nan_in_epoch_2(train_fn):
        calls = [0]

        def wrapped(iterator, n):
            calls[0] += 1
            out = train_fn(iterator, n)
            return {**out, **bad} if calls[0] == 3 else out
        return wrapped

    with pytest.raises(experiment.NonFiniteError, match=r"epoch 2.*last good checkpoint is kept: ckpt-000000006"):
        fit(tmp_path, wrap_train_fn=nan_in_epoch_2)
    assert [p.name for p in checkpoint.list_checkpoints(tmp_path / "checkpoints")] == ["ckpt-000000006"]
    state = checkpoint.restore_latest(tmp_path / "checkpoints").state
    assert state["epoch"] == 1 and state["wall_time_s"] > 0


def test_corrupted_sets_evaluated_every_interval_and_at_the_end(tmp_path):
    fit(tmp_path, epochs=3, corrupted=True, corruptions_interval=2, checkpoint_interval=2, keep_checkpoints=1)
    records = summaries.read_metrics(tmp_path)
    has = [("test/accuracy_mean_corrupted" in r) for r in records]
    assert has == [False, True, True]
    assert "test/ece_blur_2" in records[1] and "test/accuracy_mean_severity_1" in records[1]
    # Checkpoints at epoch 2 (interval) and 3 (end), only the last kept.
    assert [p.name for p in checkpoint.list_checkpoints(tmp_path / "checkpoints")] == ["ckpt-000000018"]


def test_train_subset_exact_size(monkeypatch):
    seen = []

    class Fake:
        def __init__(self, validation_percent=0.0):
            self.num_examples = 60000 - int(60000 * validation_percent)

    def fake_get(name, split, validation_percent=0.0, **kwargs):
        seen.append(validation_percent)
        return Fake(validation_percent)

    monkeypatch.setattr(experiment.ub_datasets, "get", fake_get)
    for n in (1, 7, 1000, 59999):
        assert experiment.train_subset("x", n).num_examples == n
    with pytest.raises(ValueError, match=r"train_examples must be in \[1, 60000\]"):
        experiment.train_subset("x", 60001)
