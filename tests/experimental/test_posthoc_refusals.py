"""experimental/posthoc refuses what it cannot take, with a message saying why: runs that
are not finished single-network classification runs, held-out parts that are (or overlap)
the test set or the fit part, coverage levels outside (0, 1), corrupted sets of a text run."""
import re
import types

import numpy as np
import pytest

from experimental.posthoc import posthoc
from uncertainty_baselines.runs import checkpoint, run_record

IMAGE_FLAGS = {"dataset": "cifar10", "train_examples": None, "data_dir": "/data"}
TEXT_FLAGS = {"dataset": "clinc_intent", "train_examples": None, "data_dir": "/data"}
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
    ({"flags": TEXT_FLAGS, "method": "sngp"}, "is a 'sngp' run"),
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


def test_a_finished_text_run_is_taken(tmp_path):
    assert posthoc.read_run(fake_run(tmp_path / "clinc", flags=TEXT_FLAGS))["flags"]["dataset"] == "clinc_intent"


def test_held_out_parts():
    train = posthoc.Part._make
    assert posthoc.resolve_part("validation", total=256, trained=192, what="heldout") == train(("train", 192, 256))
    assert posthoc.resolve_part("train[45000:50000]", total=50000, trained=50000, what="heldout") == (
        "train", 45000, 50000)
    assert posthoc.resolve_part("train[-5000:]", total=50000, trained=50000, what="heldout") == ("train", 45000, 50000)
    assert posthoc.resolve_part("auto", total=50000, trained=50000, what="fit") == ("train", 0, 10000)
    assert posthoc.resolve_part("auto", total=256, trained=192, what="fit") == ("train", 0, 192)
    assert str(posthoc.resolve_part("train[:10]", total=256, trained=256, what="fit")) == "train[0:10]"


def test_validation_is_the_carve_out_else_the_datasets_own_split():
    """CLINC: 15,000 training queries, 3,000 validation queries of its own."""
    clinc = {"total": 15000, "validation_size": 3000, "fit_limit": None}
    assert posthoc.resolve_part("validation", trained=15000, what="heldout", **clinc) == ("validation", 0, 3000)
    assert posthoc.resolve_part("validation", trained=12000, what="heldout", **clinc) == ("train", 12000, 15000)
    # A text set's training split is ordered by intent: auto fits on all of it.
    assert posthoc.resolve_part("auto", trained=15000, what="fit", **clinc) == ("train", 0, 15000)


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
    posthoc.check_disjoint(posthoc.Part("train", 45000, 50000), posthoc.Part("train", 0, 10000))
    posthoc.check_disjoint(posthoc.Part("validation", 0, 3000), posthoc.Part("train", 0, 15000))
    with pytest.raises(posthoc.PosthocError, match=r"train\[45000:50000\] overlaps the fit part train\[0:45001\]"):
        posthoc.check_disjoint(posthoc.Part("train", 45000, 50000), posthoc.Part("train", 0, 45001))
    with pytest.raises(posthoc.PosthocError, match=r"validation\[0:3000\] overlaps the fit part validation"):
        posthoc.check_disjoint(posthoc.Part("validation", 0, 3000), posthoc.Part("validation", 0, 3000))


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


def test_corrupted_sets_of_a_text_run_are_refused(tmp_path):
    run = fake_run(tmp_path / "clinc", flags=TEXT_FLAGS)
    for extra in ({"corruption_types": ["contrast"]}, {"severities": ["3"]}):
        config = flags(**{"run": str(run), "output_dir": str(tmp_path / "out"), "data_dir": None,
                          "corruption_types": None, "severities": None, **extra})
        with pytest.raises(posthoc.PosthocError, match="clinc_intent has no corrupted sets"):
            posthoc.run_posthoc(config)
    assert not (tmp_path / "out").exists()


def test_a_part_made_only_of_test_examples_is_refused():
    sets = {"test": {"digest": np.array([1, 2, 3], np.uint64)},
            "heldout": {"digest": np.array([2, 9], np.uint64), "id": np.arange(2)},
            "fit": {"digest": np.array([1, 3], np.uint64), "id": np.arange(2)}}
    with pytest.raises(posthoc.PosthocError, match="every one of the 2 examples of the fit part is also in the test"):
        posthoc.drop_test_duplicates(sets)


def test_class_gaussians_leave_out_classes_without_fit_examples():
    rng = np.random.default_rng(0)
    fit = {"features": rng.normal(size=(40, 3)), "labels": np.repeat([0, 1, 4, 7], 10)}  # No class 2, 3, 5, 6.
    gda, classes = posthoc.fit_class_gaussians(fit)
    assert classes == 4 and np.all(np.isfinite(gda.ood_score(fit["features"])))
    fit["labels"][-9:] = 5  # Class 7 keeps one example.
    with pytest.raises(posthoc.PosthocError, match=r"classes \[7\] have a single example"):
        posthoc.fit_class_gaussians(fit)


def test_a_model_with_several_inputs_is_refused():
    import keras
    a, b = keras.Input((3,), name="input_ids"), keras.Input((3,), name="input_mask")
    model = keras.Model([a, b], keras.layers.Dense(4)(keras.layers.Concatenate()([a, b])))
    with pytest.raises(posthoc.PosthocError, match="the model takes 2 inputs"):
        posthoc.feature_extractor(model)
