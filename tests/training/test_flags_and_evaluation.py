"""Flag validation (fails fast, lists every problem) and the evaluation helpers."""

import numpy as np
import pytest
import tensorflow as tf

from image_flag_values import image_flags
from uncertainty_baselines.runs import predictions as run_predictions
from uncertainty_baselines.training import distribution, evaluation, flags


def test_valid_flags_pass():
    flags.validate_image_flags(image_flags())
    flags.validate_image_flags(image_flags(eval_on_ood=True, corruptions_interval=5, severities=["1", "5"],
                                           strategy="mirrored", num_cores=2, batch_size=64))
    flags.validate_image_flags(image_flags(crop_padding=0))


@pytest.mark.parametrize("overrides,message", [
    ({"train_epochs": 0}, "--train_epochs must be >= 1, got 0"),
    ({"dataset": "cifar11"}, "--dataset='cifar11' is unknown; valid: ["),
    ({"dataset": "uci_boston_housing"}, "is unknown"),
    ({"strategy": "mirrored", "num_cores": 2, "batch_size": 65}, "--batch_size=65 is not divisible by the 2 replicas"),
    ({"strategy": "mirrored", "num_cores": 2, "eval_batch_size": 7}, "--eval_batch_size=7 is not divisible"),
    ({"lr_decay_epochs": ["0.8", "0.3"]}, "--lr_decay_epochs must be increasing fractions"),
    ({"lr_decay_epochs": ["a"]}, "--lr_decay_epochs must be numbers"),
    ({"crop_padding": -2}, "--crop_padding must be >= 0, got -2"),
    ({"crop_padding": 2, "dataset": "fashion_mnist"}, "--crop_padding: fashion_mnist has no pad-and-crop augmentation"),
    ({"eval_only": True}, "--eval_only needs --checkpoint_dir"),
    ({"eval_on_ood": True, "ood_dataset": ["nope"]}, "unknown: ['nope']"),
    ({"corruptions_interval": 1, "dataset": "cifar100"}, "cifar100 has no corrupted test set"),
    ({"corruptions_interval": 1, "severities": ["6"]}, "--severities must be in 1..5"),
    ({"corruption_types": ["fog"]}, "--corruption_types is evaluated only with --corruptions_interval > 0"),
    ({"corruption_types": ["fog"], "eval_only": True, "checkpoint_dir": "/r", "dataset": "cifar100"},
     "cifar100 has no corrupted test set"),
    ({"train_examples": 10}, "--train_examples (10) must be at least one batch (64)"),
    ({"output_dir": None}, "--output_dir is required"),
    ({"lr_schedule": "cosine", "lr_warmup_epochs": 2.0}, "must be shorter than --train_epochs (2) with --lr_schedule=cosine"),
    ({"lr_schedule": "linear", "lr_warmup_epochs": 3.0}, "must be shorter than --train_epochs (2) with --lr_schedule=linear"),
])
def test_bad_flags(overrides, message):
    with pytest.raises(ValueError, match="invalid flags") as info:
        flags.validate_image_flags(image_flags(**overrides))
    assert message in str(info.value)


@pytest.mark.parametrize("overrides,expected", [
    ({}, False), ({"corruption_types": ["fog"]}, False), ({"corruptions_interval": 2}, True),
    ({"eval_only": True}, False), ({"eval_only": True, "corruption_types": ["fog"]}, True),
    ({"run_dirs": ["/a", "/b"], "corruption_types": ["fog"]}, True),  # An ensemble of finished runs.
])
def test_corrupted_sets_scored_when_training_asks_or_an_evaluation_names_them(overrides, expected):
    assert flags.evaluates_corrupted(image_flags(**overrides)) is expected


def test_an_ensemble_of_runs_is_not_a_multi_worker_job():
    errors = flags.ensemble_errors(image_flags(run_dirs=["/a", "/b"], ensemble_size=2, strategy="multi_worker"))
    assert errors == ["--strategy=multi_worker is for training; an ensemble of finished runs is evaluated by one "
                      "process (--strategy=mirrored uses every local device)"]
    assert flags.ensemble_errors(image_flags(run_dirs=["/a", "/b"], ensemble_size=2, strategy="mirrored")) == []


def test_an_ensemble_of_runs_may_name_corruption_types_without_an_interval():
    flags.validate_image_flags(image_flags(run_dirs=["/a", "/b"], corruption_types=["fog"]))


def test_all_problems_reported_at_once():
    with pytest.raises(ValueError) as info:
        flags.validate_image_flags(image_flags(train_epochs=-1, l2=-1.0, keep_checkpoints=0))
    assert str(info.value).count("\n  --") == 3


def test_ood_results_from_is_in_distribution():
    confident, unsure = [0.9, 0.05, 0.05], [0.4, 0.3, 0.3]
    outputs = {"probs": np.array([confident, confident, unsure, unsure, confident]),
               "is_in_distribution": np.array([1, 1, 0, 0, 0])}
    r = evaluation.ood_results(outputs)["msp"]
    # OOD score 1 - max p: in {0.1, 0.1}, OOD {0.6, 0.6, 0.1}: pairs (ood > in) 4 of 6, ties 2 -> (4 + 1) / 6.
    assert r["auroc"] == pytest.approx(5 / 6)


def test_evaluate_flat_keys_and_every_example_once():
    strategy = distribution.get_strategy("cpu")
    probs = np.array([[0.7, 0.3], [0.2, 0.8], [0.6, 0.4]], np.float32)

    def predict(ds):
        if ds == "x":  # The OOD set's OOD examples.
            return {"probs": probs[2:], "labels": np.array([-1]), "id": np.arange(1), "is_in_distribution": np.array([0])}
        return {"probs": probs, "labels": np.array([0, 1, 1]), "id": np.arange(3)}

    flat, clean = evaluation.evaluate(predict, num_classes=2, test=None, ood={"x": "x"},
                                      corrupted={("blur", 1): None, ("blur", 2): None})
    assert flat["test/accuracy"] == pytest.approx(2 / 3)
    assert flat["test/negative_log_likelihood"] == pytest.approx(-np.log([0.7, 0.8, 0.4]).mean(), rel=1e-6)
    assert flat["test/num_examples"] == 3
    assert {"ood/x_auroc", "test/accuracy_blur_1", "test/accuracy_mean_corrupted", "test/ms_per_example"} <= set(flat)


@pytest.mark.parametrize("labels,classified", [([0, 1, 2], True), ([0, 1, -1], False)])
def test_an_ood_set_whose_examples_all_have_classes_is_classified_too(labels, classified):
    """CLINC's combined test set (out-of-scope is a class of the model) gets its accuracy,
    NLL, ... beside its OOD metrics; an image OOD set (OOD label -1) does not."""
    probs = np.array([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4]], np.float32)

    def predict(ds):
        if ds == "test":
            return {"probs": probs[:2], "labels": np.array(labels[:2]), "id": np.arange(2)}
        return {"probs": probs[2:], "labels": np.array(labels[2:]), "id": np.arange(1),  # Its OOD examples.
                "is_in_distribution": np.array([0])}

    flat, _ = evaluation.evaluate(predict, num_classes=3, test="test", ood={"combined": "ood"},
                                  ood_score_kinds=("entropy",))
    assert "ood/combined_entropy_auroc" in flat and "ood/combined_auroc" not in flat
    assert ("ood/combined_accuracy" in flat) == classified
    if classified:
        assert flat["ood/combined_accuracy"] == 1.0
        assert flat["ood/combined_negative_log_likelihood"] == pytest.approx(-np.log([0.7, 0.7, 0.4]).mean())


def test_an_ood_set_must_hold_only_its_ood_examples():
    """Its in-distribution half is the test set's predictions: in-distribution rows in the
    OOD set would be counted twice, so they are refused."""
    clean = {"probs": np.full((2, 2), 0.5, np.float32), "labels": np.array([0, 1]), "id": np.arange(2)}
    whole = {**clean, "is_in_distribution": np.array([1, 0])}
    with pytest.raises(ValueError, match="the OOD set svhn holds in-distribution examples"):
        evaluation.evaluate(lambda ds: whole if ds == "ood" else clean, num_classes=2, test="test", ood={"svhn": "ood"})
    with pytest.raises(ValueError, match=r"the OOD set svhn has arrays \['extra'\] the test set lacks"):
        run_predictions.with_in_distribution(clean, {**clean, "extra": np.zeros(2)}, "svhn")


def fingerprint_of(x, order):
    strategy = distribution.get_strategy("cpu")
    n = len(x)
    ds = tf.data.Dataset.from_tensor_slices({
        "features": x[order], "labels": np.arange(n, dtype=np.int32)[order] % 3, "id": np.arange(n)[order],
        "mask": np.ones(n, np.float32)}).batch(2)
    return evaluation.data_fingerprint("toy", strategy.experimental_distribute_dataset(ds), strategy)


def test_data_fingerprint_sees_content_not_order():
    x = np.random.default_rng(0).normal(size=(5, 2, 2, 1)).astype(np.float32)
    base = fingerprint_of(x, np.arange(5))
    assert fingerprint_of(x, np.array([3, 1, 4, 0, 2])) == base
    y = x.copy()
    y[2, 1, 1, 0] = np.nextafter(y[2, 1, 1, 0], np.float32(10))  # One ulp of one pixel.
    assert fingerprint_of(y, np.arange(5)) != base
