"""experimental/posthoc refuses what it cannot take, with a message saying why: runs that
are not finished single-network classification runs, held-out parts that are (or overlap)
the test set or the fit part, coverage levels outside (0, 1)."""
import re
import types

import numpy as np
import pytest

from experimental.posthoc import posthoc
from uncertainty_baselines.runs import checkpoint, run_record

IMAGE_FLAGS = {"dataset": "cifar10", "train_examples": None, "data_dir": "/data"}
MODEL = {"name": "wide_resnet", "kwargs": {"depth": 10}}


def fake_run(path, *, flags=IMAGE_FLAGS, metrics=None, model=MODEL, method="deterministic", with_checkpoint=True):
    run_record.write_run_record(path, flags=flags, metrics=metrics or {"test/accuracy": 0.9}, seed=0,
                                data_fingerprint=None, wall_time_s=1.0, model=model, extra={"method": method})
    if with_checkpoint:
        checkpoint.save(path / checkpoint.SUBDIR, 10, {"model": {"00000:w": np.zeros(2)}}, {"epoch": 1})
    return path


def test_a_finished_classification_run_is_taken(tmp_path):
    assert posthoc.read_run(fake_run(tmp_path / "ok"))["method"] == "deterministic"


@pytest.mark.parametrize("kwargs,message", [
    ({"flags": {**IMAGE_FLAGS, "dataset": "uci_boston"}, "metrics": {"test/rmse": 1.0}},
     "is not a classification run"),
    ({"metrics": {"test/negative_log_likelihood": 1.0}}, "is not a classification run"),
    ({"with_checkpoint": False}, "has no checkpoint under"),
    ({"model": None}, "records no single network (an ensemble of runs?)"),
    ({"method": "dropout"}, "is a 'dropout' run"),
    ({"flags": {**IMAGE_FLAGS, "dataset": "clinc_intent"}}, "is a text run"),
])
def test_runs_it_cannot_take_are_refused(tmp_path, kwargs, message):
    with pytest.raises(posthoc.PosthocError, match=re.escape(message)):
        posthoc.read_run(fake_run(tmp_path / "run", **kwargs))


def test_missing_or_unfinished_runs_are_refused(tmp_path):
    with pytest.raises(posthoc.PosthocError, match="does not exist"):
        posthoc.read_run(tmp_path / "nowhere")
    (tmp_path / "started").mkdir()
    with pytest.raises(posthoc.PosthocError, match="is not a finished run: no run record"):
        posthoc.read_run(tmp_path / "started")


def test_held_out_parts():
    assert posthoc.resolve_part("validation", total=256, trained=192, what="heldout") == (192, 256)
    assert posthoc.resolve_part("train[45000:50000]", total=50000, trained=50000, what="heldout") == (45000, 50000)
    assert posthoc.resolve_part("train[-5000:]", total=50000, trained=50000, what="heldout") == (45000, 50000)
    assert posthoc.resolve_part("auto", total=50000, trained=50000, what="fit") == (0, 10000)
    assert posthoc.resolve_part("auto", total=256, trained=192, what="fit") == (0, 192)


@pytest.mark.parametrize("spec,message", [
    ("test", "must never be the test set"),
    ("test[0:100]", "must never be the test set"),
    ("ood_mnist", "must never be the test set"),
    ("corrupted_contrast_3", "must never be the test set"),
    ("validation", "trained on all 50000 training examples, so it has no validation carve-out"),
    ("train[10:10]", "is empty"),
    ("train[::2]", "expected 'validation' or 'train\\[a:b\\]'"),
    ("auto", "expected 'validation' or 'train\\[a:b\\]'"),  # auto is for the fit part only.
])
def test_bad_held_out_parts_are_refused(spec, message):
    with pytest.raises(posthoc.PosthocError, match=message):
        posthoc.resolve_part(spec, total=50000, trained=50000, what="heldout")


def test_held_out_overlapping_the_fit_part_is_refused():
    posthoc.check_disjoint((45000, 50000), (0, 10000))
    with pytest.raises(posthoc.PosthocError, match=r"train\[45000:50000\] overlaps the fit part train\[0:45001\]"):
        posthoc.check_disjoint((45000, 50000), (0, 45001))


def flags(**overrides):
    values = {"run": "/runs/a", "output_dir": "/out", "heldout": "validation", "fit": "auto", "coverage": 0.9,
              "methods": list(posthoc.METHODS), "batch_size": 100, "laplace_samples": 10}
    return types.SimpleNamespace(**{**values, **overrides})


@pytest.mark.parametrize("overrides,message", [
    ({"coverage": 1.0}, "--coverage must lie in (0, 1)"),
    ({"coverage": 0.0}, "--coverage must lie in (0, 1)"),
    ({"coverage": -0.5}, "--coverage must lie in (0, 1)"),
    ({"methods": ["temperature", "mixup"]}, "--methods: unknown ['mixup']"),
    ({"output_dir": "/runs/a/posthoc"}, "is inside the run"),
    ({"heldout": "test[0:10]"}, "must never be the test set"),
    ({"run": None}, "--run is required"),
])
def test_bad_flags_are_listed(overrides, message):
    assert posthoc.flag_errors(flags()) == []
    assert any(message in e for e in posthoc.flag_errors(flags(**overrides)))


def test_a_model_without_a_dense_output_layer_is_refused():
    import keras
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Softmax()])
    with pytest.raises(posthoc.PosthocError, match="last layer is Softmax, not a linear Dense"):
        posthoc.feature_extractor(model)
    extractor, kernel, bias = posthoc.feature_extractor(
        keras.Sequential([keras.Input((3,)), keras.layers.Dense(5, activation="relu"), keras.layers.Dense(4)]))
    features, logits = extractor(np.ones((2, 3), np.float32))
    np.testing.assert_allclose(np.asarray(features) @ kernel + bias, logits, rtol=1e-5, atol=1e-6)
