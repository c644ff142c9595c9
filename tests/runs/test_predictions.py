"""runs/predictions.py: the per-example predictions artefact (write, verify, refuse)."""
import json

import numpy as np
import pytest

from uncertainty_baselines.runs import predictions


def outputs(n, k=3, members=None, ood=False, seed=0):
    rng = np.random.default_rng(seed)
    shape = (n, k) if members is None else (n, members, k)
    out = {"logits": rng.normal(size=shape).astype(np.float32), "probs": np.full(shape, 1.0 / k, np.float32),
           "id": np.arange(n, dtype=np.int64), "labels": rng.integers(0, k, n).astype(np.int32)}
    if ood:
        out["is_in_distribution"] = (np.arange(n) < n // 2).astype(np.int32)
        out["labels"][n // 2:] = -1
    return out


def test_write_then_read_every_kind_keeps_the_saved_arrays_exactly(tmp_path):
    writer = predictions.PredictionsWriter(tmp_path / "predictions")
    sets = {("test", None): outputs(7, members=4), ("ood", "mnist"): outputs(10, ood=True, seed=1),
            ("corrupted", ("gaussian_noise", 3)): outputs(7, seed=2)}
    for (kind, key), out in sets.items():
        writer.add(kind, key, out)
    assert not (tmp_path / "predictions").exists()  # Nothing in place before commit.
    writer.commit(step=12, num_classes=3)
    got = predictions.read_predictions(tmp_path / "predictions")
    assert sorted(got) == ["corrupted_gaussian_noise_3", "ood_mnist", "test"]
    for (kind, key), out in sets.items():
        s = got[predictions.set_name(kind, key)]
        assert s.meta["kind"] == kind and s.meta["num_examples"] == len(out["id"])
        assert set(s.arrays) == {k for k in predictions.SAVED_KEYS if k in out}  # probs left out
        for k, v in s.arrays.items():
            np.testing.assert_array_equal(v, out[k])
            assert v.dtype == out[k].dtype
    assert got["test"].arrays["logits"].shape == (7, 4, 3)  # Member axis kept.
    assert got["corrupted_gaussian_noise_3"].meta["severity"] == 3
    assert got["ood_mnist"].meta["ood_dataset"] == "mnist"
    manifest = json.loads((tmp_path / "predictions" / "manifest.json").read_text())
    assert manifest["format"] == "ub-predictions-v1" and manifest["step"] == 12
    assert [p.name for p in tmp_path.iterdir()] == ["predictions"]  # No temporaries left.


def test_commit_replaces_an_earlier_folder_and_abort_leaves_it(tmp_path):
    first = predictions.PredictionsWriter(tmp_path / "p")
    first.add("test", None, outputs(5))
    first.commit()
    second = predictions.PredictionsWriter(tmp_path / "p")
    second.add("test", None, outputs(6, seed=3))
    second.abort()
    assert predictions.read_set(tmp_path / "p", "test").meta["num_examples"] == 5
    third = predictions.PredictionsWriter(tmp_path / "p")
    third.add("test", None, outputs(8, seed=4))
    third.commit()
    assert predictions.read_set(tmp_path / "p", "test").meta["num_examples"] == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]


def test_tampered_missing_or_pickled_files_are_refused(tmp_path):
    writer = predictions.PredictionsWriter(tmp_path / "p")
    writer.add("test", None, outputs(5))
    writer.commit()
    file = tmp_path / "p" / "test.npz"
    data = bytearray(file.read_bytes())
    data[-10] ^= 0xFF
    file.write_bytes(bytes(data))
    with pytest.raises(predictions.PredictionsError, match="test.npz has sha256"):
        predictions.read_predictions(tmp_path / "p")
    file.unlink()
    with pytest.raises(predictions.PredictionsError, match="test.npz is missing"):
        predictions.read_set(tmp_path / "p", "test")
    with pytest.raises(predictions.PredictionsError, match="--save_predictions"):
        predictions.read_manifest(tmp_path / "nowhere")
    bad = predictions.PredictionsWriter(tmp_path / "q")
    with pytest.raises(ValueError, match="only numeric arrays"):
        bad.add("test", None, {**outputs(2), "labels": np.array([{"a": 1}, None], dtype=object)})
    with pytest.raises(ValueError, match="lack 'logits'"):
        bad.add("test", None, {"id": np.arange(2), "labels": np.zeros(2)})
    bad.abort()


def test_evaluate_hands_every_checked_set_to_on_predictions():
    from uncertainty_baselines.training import evaluation
    sets = {"test": outputs(6), "ood": outputs(8, ood=True, seed=1), ("c", 1): outputs(6, seed=2)}
    sets["ood"] = {**{k: v[4:] for k, v in sets["ood"].items()}, "id": np.arange(4)}  # Its OOD examples only.
    seen = []
    flat, _ = evaluation.evaluate(lambda name: sets[name], num_classes=3, test="test", ood={"far": "ood"},
                                  corrupted={("c", 1): ("c", 1)},
                                  on_predictions=lambda kind, key, out: seen.append((kind, key, out)))
    assert [(kind, key) for kind, key, _ in seen] == [("test", None), ("ood", "far"), ("corrupted", ("c", 1))]
    assert seen[0][2] is sets["test"] and "ood/far_auroc" in flat
    combined = seen[1][2]  # The test set's predictions, then the OOD examples' (ids after them).
    np.testing.assert_array_equal(combined["id"], np.arange(10))
    np.testing.assert_array_equal(combined["is_in_distribution"], np.r_[np.ones(6), np.zeros(4)])
    np.testing.assert_array_equal(combined["logits"], np.concatenate([sets["test"]["logits"], sets["ood"]["logits"]]))
