"""Checkpoints: atomic layout, sha256 verification, fallback from a corrupt latest, rotation."""
import json
import logging
import os

import numpy as np
import pytest

from uncertainty_baselines.runs import checkpoint


def arrays(v):
    return {"model": {"00000:dense/kernel": np.full((2, 3), v, np.float32),
                      "00001:dense/bias": np.arange(3, dtype=np.int64) + v}}


def test_save_load_round_trip(tmp_path):
    path = checkpoint.save(tmp_path, 7, arrays(1.5), {"epoch": 2})
    assert path.name == "ckpt-000000007"
    assert sorted(p.name for p in path.iterdir()) == ["manifest.json", "model.npz"]
    ckpt = checkpoint.load(path)
    assert ckpt.step == 7 and ckpt.state == {"epoch": 2}
    assert list(ckpt.parts["model"]) == ["00000:dense/kernel", "00001:dense/bias"]
    np.testing.assert_array_equal(ckpt.parts["model"]["00001:dense/bias"], [1.5, 2.5, 3.5])
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["files"]["model.npz"]["sha256"] == checkpoint.sha256_file(path / "model.npz")
    assert not list(tmp_path.glob(".tmp*"))


def test_tampered_file_is_refused(tmp_path):
    path = checkpoint.save(tmp_path, 1, arrays(0.0), {})
    data = bytearray((path / "model.npz").read_bytes())
    data[-40] ^= 1
    (path / "model.npz").write_bytes(bytes(data))
    with pytest.raises(checkpoint.CorruptCheckpointError, match="model.npz has sha256"):
        checkpoint.load(path)


def test_corrupt_latest_falls_back_with_warning(tmp_path, caplog):
    checkpoint.save(tmp_path, 1, arrays(1.0), {"epoch": 1})
    latest = checkpoint.save(tmp_path, 2, arrays(2.0), {"epoch": 2})
    (latest / "model.npz").write_bytes(b"truncated")
    with caplog.at_level(logging.WARNING):
        ckpt = checkpoint.restore_latest(tmp_path)
    assert ckpt.step == 1 and ckpt.state == {"epoch": 1}
    assert "falling back to the previous checkpoint" in caplog.text
    assert (tmp_path / "ckpt-000000002.corrupt").is_dir()
    assert [p.name for p in checkpoint.list_checkpoints(tmp_path)] == ["ckpt-000000001"]


def test_missing_manifest_and_empty_dir(tmp_path):
    assert checkpoint.restore_latest(tmp_path / "none") is None
    (tmp_path / "ckpt-000000003").mkdir()  # A folder without manifest: never valid.
    with pytest.raises(checkpoint.CorruptCheckpointError, match="unreadable manifest.json"):
        checkpoint.load(tmp_path / "ckpt-000000003")
    assert checkpoint.restore_latest(tmp_path) is None


def test_keep_last_deletes_only_this_process_temporaries(tmp_path):
    for step in (1, 2, 3, 4):
        checkpoint.save(tmp_path, step, arrays(step), {})
    (tmp_path / ".tmp-ckpt-000000005-999").mkdir()  # Another process's: maybe a live writer's.
    (tmp_path / f".tmp-ckpt-000000005-{os.getpid()}").mkdir()  # This process's, left by a failed save.
    deleted = checkpoint.keep_last(tmp_path, 2)
    assert sorted(p.name for p in deleted) == [f".tmp-ckpt-000000005-{os.getpid()}", "ckpt-000000001",
                                               "ckpt-000000002"]
    assert (tmp_path / ".tmp-ckpt-000000005-999").is_dir()  # runs.lifecycle removes it under the run's lock.
    assert [p.name for p in checkpoint.list_checkpoints(tmp_path)] == ["ckpt-000000003", "ckpt-000000004"]
    with pytest.raises(ValueError, match="keep must be >= 1"):
        checkpoint.keep_last(tmp_path, 0)


def test_variables_round_trip_and_mismatch():
    import keras
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.BatchNormalization()])
    saved = checkpoint.variables_to_arrays(model.variables)
    assert len(saved) == len(model.variables) == 6
    fresh = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.BatchNormalization()])
    checkpoint.assign_arrays(fresh.variables, saved, "model")  # Layer names differ (dense_1): by position.
    for a, b in zip(model.variables, fresh.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)])
    with pytest.raises(ValueError, match="holds 6 variables, the model has 2"):
        checkpoint.assign_arrays(other.variables, saved, "model")
    wide = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3), keras.layers.BatchNormalization()])
    with pytest.raises(ValueError, match=r"has shape \(3, 2\) in the checkpoint, \(3, 3\) in the model"):
        checkpoint.assign_arrays(wide.variables, saved, "model")
