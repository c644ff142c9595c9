"""--save_predictions on synthetic data: the final evaluation's per-example logits, ids and
labels of every set, consistent with the reported metrics; member axis kept; nothing left
by a run that stops."""
import keras
import numpy as np
import pytest
from scipy import special

from synthetic_run import CLASSES, N_TEST, dense_model, fit, make_data
from uncertainty_baselines import metrics as ub_metrics
from uncertainty_baselines.runs import predictions
from uncertainty_baselines.training import distribution, experiment, method


def test_final_evaluation_writes_every_set_consistent_with_the_metrics(tmp_path):
    record, model = fit(tmp_path, epochs=2, ood=True, corrupted=True, corruptions_interval=2, save_predictions=True)
    got = predictions.read_predictions(tmp_path / "predictions")
    assert sorted(got) == ["corrupted_blur_1", "corrupted_blur_2", "corrupted_noise_1", "corrupted_noise_2",
                           "ood_far", "test"]
    manifest = predictions.read_manifest(tmp_path / "predictions")
    assert manifest["step"] == record["step"] and manifest["num_classes"] == CLASSES
    test = got["test"].arrays
    assert test["logits"].shape == (N_TEST, CLASSES) and test["logits"].dtype == np.float32
    np.testing.assert_array_equal(test["id"], np.arange(N_TEST))  # Every example once, padding dropped.
    m = ub_metrics.ClassificationMetrics(CLASSES)
    m.add_batch(special.softmax(test["logits"].astype(np.float64), axis=1), label=test["labels"])
    for key in ("accuracy", "negative_log_likelihood", "ece"):
        assert m.result()[key] == pytest.approx(record[f"test/{key}"], rel=1e-5, abs=1e-6), key
    # The saved logits are the model's on the test inputs (the synthetic set of seed 1).
    inputs = np.concatenate([b["features"][b["mask"] > 0] for b in _batches(1)])
    np.testing.assert_allclose(test["logits"], model(inputs, training=False), rtol=1e-5, atol=1e-5)
    ood = got["ood_far"].arrays  # The test set's predictions, then the OOD examples'.
    assert set(ood) == {"logits", "id", "labels", "is_in_distribution"}
    np.testing.assert_array_equal(ood["logits"][:N_TEST], test["logits"])
    np.testing.assert_array_equal(ood["id"], np.arange(2 * N_TEST))
    auroc = ub_metrics.auroc(1 - special.softmax(ood["logits"], axis=1).max(1), ood["is_in_distribution"] == 0)
    assert auroc == pytest.approx(record["ood/far_auroc"], abs=1e-6)
    noise = got["corrupted_noise_2"]
    assert noise.meta["corruption_type"] == "noise" and noise.meta["severity"] == 2
    acc = np.mean(noise.arrays["logits"].argmax(1) == noise.arrays["labels"])
    assert acc == pytest.approx(record["test/accuracy_noise_2"])


def _batches(seed):
    from synthetic_run import eval_set
    return [{k: v.numpy() for k, v in b.items()} for b in eval_set(seed)]


def test_off_by_default_and_only_at_the_end(tmp_path):
    fit(tmp_path / "off", epochs=1)
    assert not (tmp_path / "off" / "predictions").exists()


def two_passes(model, features):
    """A member axis: the model's logits and their double."""
    logits = model(features, training=False)
    return keras.ops.stack([logits, 2.0 * logits], axis=1)


def test_member_axis_is_kept(tmp_path):
    record, _ = fit(tmp_path, epochs=1, save_predictions=True, method=method.Method("two", predict=two_passes))
    logits = predictions.read_set(tmp_path / "predictions", "test").arrays["logits"]
    assert logits.shape == (N_TEST, 2, CLASSES)
    np.testing.assert_allclose(logits[:, 1], 2 * logits[:, 0], rtol=1e-6)
    probs = special.softmax(logits.astype(np.float64), axis=2).mean(axis=1)  # The run's predictive.
    m = ub_metrics.ClassificationMetrics(CLASSES)
    m.add_batch(probs, label=predictions.read_set(tmp_path / "predictions", "test").arrays["labels"])
    assert m.result()["negative_log_likelihood"] == pytest.approx(record["test/negative_log_likelihood"], rel=1e-5)


def test_ensemble_of_members_writes_member_logits(tmp_path):
    strategy = distribution.get_strategy("cpu")
    data = make_data(strategy, ood=True)
    with strategy.scope():
        models = [dense_model(), dense_model()]
    saver_dir = tmp_path / "predictions"
    from uncertainty_baselines.training import evaluation
    saver = evaluation.PredictionsSaver(saver_dir)
    experiment.evaluate_members(models, strategy=strategy, data=data, on_predictions=saver.also(None))
    saver.commit(members=2)
    got = predictions.read_predictions(saver_dir)
    assert got["test"].arrays["logits"].shape == (N_TEST, 2, CLASSES)
    assert got["ood_far"].arrays["logits"].shape[1:] == (2, CLASSES)


class NanInEvaluation(keras.layers.Layer):
    def call(self, x, training=None):
        return x if training else x * float("nan")


def test_a_run_stopping_on_non_finite_outputs_leaves_no_predictions(tmp_path):
    def nan_model():
        return keras.Sequential([dense_model(), NanInEvaluation()])

    with pytest.raises(experiment.NonFiniteError, match="evaluation after epoch 1"):
        fit(tmp_path, model_fn=nan_model, epochs=1, save_predictions=True)
    assert not (tmp_path / "predictions").exists()
    assert not list(tmp_path.glob(".predictions.tmp-*"))
