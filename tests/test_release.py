"""python -m uncertainty_baselines.release and ub.models.load of its bundles: the same
predictions as the run, on every Keras backend; unfit runs and bad bundles refused."""
import json
import pathlib
import shutil

import numpy as np
import pytest

import uncertainty_baselines as ub
from backend_run import run_on_backend
from uncertainty_baselines import release
from uncertainty_baselines.runs import bundle, checkpoint, run_record

SPEC = {"name": "wide_resnet", "kwargs": {"input_shape": [8, 8, 3], "depth": 10, "width_multiplier": 1,
                                          "num_classes": 4, "seed": 3}}
X = np.random.default_rng(0).normal(size=(5, 8, 8, 3)).astype(np.float32)


def make_run(path, *, steps=6, checkpoint_step=6, dirty=False, metrics=None):
    """A finished run directory in the format the baselines write: a model whose every weight
    (batch-norm statistics too) is moved off its initial value, a checkpoint, a run record."""
    model = ub.models.get(SPEC["name"], **SPEC["kwargs"])
    rng = np.random.default_rng(1)
    for v in model.variables:
        value = rng.normal(size=v.shape) * 0.2
        v.assign((np.abs(value) + 0.5 if "variance" in v.path else value).astype(np.float32))
    checkpoint.save(path / checkpoint.SUBDIR, checkpoint_step,
                    {"model": checkpoint.variables_to_arrays(model.variables)}, {"epoch": 1})
    run_record.write_run_record(
        path, flags={"dataset": "cifar10", "train_epochs": 1, "data_dir": str(path)}, seed=3,
        metrics=metrics or {"test/accuracy": 0.5, "test/ece": 0.1, "test/num_examples": 64.0},
        data_fingerprint="f" * 64, wall_time_s=60.0, model=SPEC,
        extra={"method": "deterministic", "steps": steps, "train_examples": 64},
        git={"commit": "a" * 40, "dirty": dirty})
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("run") / "run")


def logits(model):
    return np.asarray(model(X, training=False))


@pytest.mark.parametrize("name", ["bundle", "bundle.tar.gz"])
def test_bundle_predicts_as_the_run(run_dir, tmp_path, name):
    path = release.release(run_dir, tmp_path / name)
    from_run, from_bundle = logits(ub.models.load(run_dir)), logits(ub.models.load(path))
    np.testing.assert_array_equal(from_bundle, from_run)
    fresh = logits(ub.models.get(SPEC["name"], **SPEC["kwargs"]))
    assert np.abs(fresh - from_run).max() > 1e-3  # The weights were really loaded.


def test_model_card_says_how_it_was_made_and_what_it_scores(run_dir, tmp_path):
    card = bundle.read(release.release(run_dir, tmp_path / "b")).card
    for fact in ("# wide_resnet on cifar10 (deterministic)", "commit `" + "a" * 40, "| test/accuracy | 0.5000 |",
                 "test set (64 examples)", "f" * 64, "## Intended use", "## Known limitations",
                 "Krizhevsky (2009)", 'ub.models.load("b")'):
        assert fact in card, fact


@pytest.mark.parametrize("kind,message", [
    ("dirty", "uncommitted changes"), ("unfinished", "latest checkpoint is step 2, the run recorded 6"),
    ("non_finite", "non-finite metrics: test/negative_log_likelihood")])
def test_unfit_run_refused_unless_forced_then_the_card_says_so(tmp_path, kind, message):
    path = make_run(tmp_path / "run", dirty=kind == "dirty", checkpoint_step=2 if kind == "unfinished" else 6,
                    metrics={"test/accuracy": 0.5, "test/negative_log_likelihood": float("nan")}
                    if kind == "non_finite" else None)
    with pytest.raises(release.ReleaseError, match=message):
        release.release(path, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    forced = bundle.read(release.release(path, tmp_path / "forced", force=True))
    assert any(message.split(":")[0] in w for w in forced.warnings)
    assert "Released with --force despite" in forced.card and message.split(":")[0] in forced.card


def test_run_without_record_or_checkpoint_refused(tmp_path, run_dir):
    with pytest.raises(release.ReleaseError, match="no run.json: the run is unfinished"):
        release.release(tmp_path, tmp_path / "b")
    no_ckpt = tmp_path / "eval"
    shutil.copytree(run_dir, no_ckpt)
    shutil.rmtree(no_ckpt / checkpoint.SUBDIR)
    with pytest.raises(release.ReleaseError, match="has no checkpoint"):
        release.release(no_ckpt, tmp_path / "b", force=True)


def test_a_jax_run_is_refused_with_what_its_checkpoint_holds(tmp_path, run_dir):
    jax_run = tmp_path / "jax"
    shutil.copytree(run_dir, jax_run)
    shutil.rmtree(jax_run / checkpoint.SUBDIR)
    arrays = {"w": np.zeros(3, np.float32)}
    checkpoint.save(jax_run / checkpoint.SUBDIR, 6, {"params": arrays, "opt_state": arrays}, {"epoch": 1})
    with pytest.raises(release.ReleaseError, match=r"no Keras model weights \(it holds \['opt_state', 'params'\]\)"):
        release.release(jax_run, tmp_path / "b", force=True)


def test_cli_writes_a_bundle_and_refuses_with_exit_2(run_dir, tmp_path, capsys):
    assert release.main([str(run_dir), "--out", str(tmp_path / "b.tar.gz")]) == 0
    out = capsys.readouterr().out
    assert "sha256 of b.tar.gz: " + checkpoint.sha256_file(tmp_path / "b.tar.gz") in out
    assert release.main([str(run_dir), "--out", str(tmp_path / "b.tar.gz")]) == 2
    assert "never overwritten" in capsys.readouterr().err


def rewrite(path, name, edit):
    """Edit one file of a bundle folder and re-hash it, as a careless publisher could."""
    (path / name).write_text(edit((path / name).read_text()))
    manifest = json.loads((path / bundle.MANIFEST).read_text())
    manifest["files"][name]["sha256"] = checkpoint.sha256_file(path / name)
    (path / bundle.MANIFEST).write_text(json.dumps(manifest))


def test_spec_naming_an_unknown_model_refused(run_dir, tmp_path):
    path = release.release(run_dir, tmp_path / "b")
    rewrite(path, "model.json", lambda text: text.replace('"wide_resnet"', '"resnet9000"'))
    with pytest.raises(ValueError, match="model.json|resnet9000"):
        ub.models.load(path)


def test_weights_that_do_not_fit_the_spec_refused_naming_the_tensor(run_dir, tmp_path):
    path = release.release(run_dir, tmp_path / "b")
    rewrite(path, "model.json", lambda text: text.replace('"num_classes": 4', '"num_classes": 5'))
    with pytest.raises(ValueError, match=r"dense(_\d+)?/kernel has shape \(64, 4\) in the checkpoint, \(64, 5\)"):
        ub.models.load(path)


def test_a_shape_mismatch_assigns_nothing(run_dir):
    model = ub.models.get(SPEC["name"], **SPEC["kwargs"])
    before = [np.asarray(v).copy() for v in model.variables]
    arrays = checkpoint.load(checkpoint.list_checkpoints(run_dir / checkpoint.SUBDIR)[-1]).parts["model"]
    last = list(arrays)[-1]
    arrays = {**arrays, last: np.zeros(7, np.float32)}
    with pytest.raises(ValueError, match="has shape"):
        checkpoint.assign_arrays(model.variables, arrays, "test")
    for v, b in zip(model.variables, before):
        np.testing.assert_array_equal(np.asarray(v), b)


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_bundle_loads_on_other_backends_with_the_same_predictions(run_dir, tmp_path, backend):
    path = release.release(run_dir, tmp_path / "b.tar.gz")
    np.save(tmp_path / "x.npy", X)
    expected = logits(ub.models.load(run_dir))
    out = run_on_backend(f"""
import keras, numpy as np, uncertainty_baselines as ub
model = ub.models.load({str(path)!r})
np.save({str(tmp_path / 'got.npy')!r}, keras.ops.convert_to_numpy(model(np.load({str(tmp_path / 'x.npy')!r}), training=False)))
print("ok", keras.backend.backend())
""", backend)
    assert f"ok {backend}" in out
    np.testing.assert_allclose(np.load(tmp_path / "got.npy"), expected, rtol=1e-4, atol=1e-4)


def test_release_is_documented_where_users_look():
    root = pathlib.Path(__file__).resolve().parents[1]
    assert "python -m uncertainty_baselines.release" in (root / "README.md").read_text()


@pytest.mark.integration
def test_a_reference_checkpoint_bundled_gives_the_reference_logits(shared_data, tmp_path):
    folder = shared_data / "ub-checkpoints" / "wrn16-2"
    if not (folder / "checkpoint").exists():
        pytest.skip(f"reference checkpoint {folder} is absent")
    spec = {"name": "wide_resnet", "kwargs": {"input_shape": [32, 32, 3], "depth": 16, "width_multiplier": 2,
                                              "num_classes": 10}}
    assert release.main([str(folder), "--out", str(tmp_path / "ref.tar.gz"), "--dataset", "cifar10",
                         "--reference_model", json.dumps(spec)]) == 0
    got = bundle.read(tmp_path / "ref.tar.gz")
    assert sorted(got.record["imported_from"]) == ["checkpoint", "checkpoint-1.data-00000-of-00001",
                                                   "checkpoint-1.index"]
    assert "imported from a reference-suite checkpoint" in got.card
    expected = np.load(folder / "expected.npz")
    model = ub.models.load(tmp_path / "ref.tar.gz")
    np.testing.assert_allclose(np.asarray(model(expected["features"], training=False)), expected["logits"],
                               atol=1e-4)
