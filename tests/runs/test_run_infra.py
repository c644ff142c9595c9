"""Run record, output-dir guard, progress/ETA and metrics summaries."""
import json

import pytest

from uncertainty_baselines.runs import output_dir, progress, run_record, summaries


def test_run_record_round_trip_holds_provenance(tmp_path):
    path = run_record.write_run_record(
        tmp_path, flags={"seed": 3, "dataset": "x"}, metrics={"test/accuracy": 0.5, "bad": float("nan")},
        seed=3, data_fingerprint="abc", wall_time_s=1.5, model={"name": "mlp", "kwargs": {"a": 1}})
    assert path == tmp_path / "run.json"
    record = run_record.read_run_record(tmp_path)
    assert record["flags"] == {"seed": 3, "dataset": "x"}
    assert record["metrics"] == {"test/accuracy": 0.5, "bad": None}
    assert record["model"] == {"name": "mlp", "kwargs": {"a": 1}}
    assert record["packages"]["numpy"] is not None
    assert record["packages"]["tensorflow"] is not None
    assert len(record["git"]["commit"]) == 40  # This test runs inside the git checkout.
    assert record["hardware"]["cpu_count"] >= 1
    assert not list(tmp_path.glob(".*tmp*")), "temporary file left behind"


def test_run_record_keeps_the_code_version_taken_at_the_start(tmp_path):
    at_start = {"commit": "0" * 40, "dirty": False}  # e.g. HEAD moved on during a long run
    run_record.write_run_record(tmp_path, flags={}, metrics={}, seed=0, data_fingerprint=None,
                                wall_time_s=1.0, git=at_start)
    assert run_record.read_run_record(tmp_path)["git"] == at_start


def test_read_run_record_missing_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="run.json"):
        run_record.read_run_record(tmp_path)


def test_fingerprint_is_length_prefixed():
    assert run_record.fingerprint("ab", "c") != run_record.fingerprint("a", "bc")
    assert run_record.fingerprint(b"ab") == run_record.fingerprint("ab")


def test_output_dir_new_then_resume_then_refuse(tmp_path):
    d = tmp_path / "run"
    flags = {"lr": 0.1, "epochs": 2, "output_dir": str(d), "steps": (1, 2)}
    assert output_dir.prepare_output_dir(d, flags, ignore=["output_dir"]) is False
    (d / "ckpt").write_text("x")
    # Same flags (tuple vs list, ignored key changed): resume.
    assert output_dir.prepare_output_dir(d, {**flags, "output_dir": "elsewhere", "steps": [1, 2]},
                                         ignore=["output_dir"]) is True
    with pytest.raises(ValueError, match=r"lr: 0.1 -> 0.2.*--overwrite"):
        output_dir.prepare_output_dir(d, {**flags, "lr": 0.2}, ignore=["output_dir"])
    assert (d / "ckpt").exists()
    assert output_dir.prepare_output_dir(d, {**flags, "lr": 0.2}, overwrite=True, ignore=["output_dir"]) is False
    assert not (d / "ckpt").exists()
    assert json.loads((d / "flags.json").read_text())["lr"] == 0.2


def test_output_dir_resumes_a_run_older_than_a_flag_at_its_default(tmp_path):
    d = tmp_path / "run"
    output_dir.prepare_output_dir(d, {"lr": 0.1})  # Started before --signs existed.
    defaults = {"signs": 0.5, "unused": 1}
    with pytest.raises(ValueError, match=r"signs: 0.5 -> 1.0"):  # Made at the default.
        output_dir.prepare_output_dir(d, {"lr": 0.1, "signs": 1.0}, defaults=defaults)
    assert output_dir.prepare_output_dir(d, {"lr": 0.1, "signs": 0.5}, defaults=defaults) is True
    assert json.loads((d / "flags.json").read_text()) == {"lr": 0.1, "signs": 0.5}
    # A flag recorded before it was declared result-neutral does not block a resume either.
    assert output_dir.prepare_output_dir(d, {"lr": 0.1, "signs": 1.0}, ignore=["signs"]) is True
    other = tmp_path / "other"
    output_dir.prepare_output_dir(other, {"lr": 0.1})
    with pytest.raises(ValueError, match=r"signs: '<unset>' -> 0.5"):  # Without its default: refused.
        output_dir.prepare_output_dir(other, {"lr": 0.1, "signs": 0.5})


def test_output_dir_refuses_foreign_non_empty_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        output_dir.prepare_output_dir(tmp_path, {"a": 1})
    assert (tmp_path / "notes.txt").exists()


def test_output_dir_rejects_unserialisable_flags(tmp_path):
    with pytest.raises(ValueError, match="JSON-serialisable"):
        output_dir.prepare_output_dir(tmp_path / "r", {"f": object()})


@pytest.mark.parametrize("seconds,text", [(0, "0s"), (59.4, "59s"), (187, "3m07s"),
                                          (7500, "2h05m"), (97200, "1d03h")])
def test_format_duration(seconds, text):
    assert progress.format_duration(seconds) == text


def test_format_duration_rejects_negative():
    with pytest.raises(ValueError, match="non-negative"):
        progress.format_duration(-1)


def test_progress_eta_counts_only_this_process():
    now = [0.0]
    lines = []
    p = progress.Progress(100, initial=40, every_s=10, log_fn=lines.append, clock=lambda: now[0])
    now[0] = 30.0  # 20 new steps in 30 s -> 1.5 s/step, 40 steps left -> 60 s.
    line = p.update(60, loss=0.25)
    assert line == "step 60/100 (60.0%), 0.667 steps/s, elapsed 30s, ETA 1m00s, loss=0.25"
    now[0] = 35.0
    assert p.update(61) is None  # Rate-limited.
    assert p.update(62, force=True) is not None
    assert len(lines) == 2
    assert progress.estimate_remaining(0, 10, 5.0) is None


def test_progress_rejects_bad_bounds():
    with pytest.raises(ValueError, match="initial"):
        progress.Progress(10, initial=11)


def test_summaries_jsonl_tensorboard_and_truncate(tmp_path):
    w = summaries.SummaryWriter(tmp_path)
    for step in (10, 20, 30):
        w.write(step, {"test/accuracy": step / 100, "test/ece": float("inf")}, epoch=step // 10)
    w.close()
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 40, "test/acc')  # A torn line, as left by a crash mid-write.
    records = summaries.read_metrics(tmp_path)
    assert [r["step"] for r in records] == [10, 20, 30]
    assert records[1] == {"step": 20, "epoch": 2, "test/accuracy": 0.2, "test/ece": None}
    assert list((tmp_path / "summaries").glob("events.out.tfevents.*"))
    assert summaries.truncate_metrics(tmp_path, after_step=20) == 2
    assert [r["step"] for r in summaries.read_metrics(tmp_path)] == [10, 20]


def test_tensorboard_events_hold_the_scalars(tmp_path):
    import tensorflow as tf
    w = summaries.SummaryWriter(tmp_path)
    w.write(7, {"test/accuracy": 0.75})
    w.close()
    (event_file,) = (tmp_path / "summaries").glob("events.out.tfevents.*")
    values = [(e.step, v.tag, float(tf.make_ndarray(v.tensor)), v.metadata.plugin_data.plugin_name)
              for e in tf.compat.v1.train.summary_iterator(str(event_file)) for v in e.summary.value]
    assert values == [(7, "test/accuracy", 0.75, "scalars")]
