"""Corruption aggregation, mCE and the flat reference key names."""
import numpy as np
import pytest

from uncertainty_baselines.metrics import (
    aggregate_corrupted, corruption_errors, flatten_results, mean_corruption_error)

GRID = {("blur", 1): {"accuracy": 0.9, "ece": 0.1}, ("blur", 2): {"accuracy": 0.7, "ece": 0.3},
        ("noise", 1): {"accuracy": 0.8, "ece": 0.2}, ("noise", 2): {"accuracy": 0.4, "ece": 0.6}}


def test_aggregate_corrupted_means():
    flat = aggregate_corrupted(GRID)
    assert flat["accuracy_blur_2"] == 0.7
    assert flat["accuracy_blur"] == pytest.approx(0.8)
    assert flat["accuracy_noise"] == pytest.approx(0.6)
    assert flat["accuracy_mean_severity_1"] == pytest.approx(0.85)
    assert flat["accuracy_mean_severity_2"] == pytest.approx(0.55)
    assert flat["accuracy_mean_corrupted"] == pytest.approx(0.7)
    assert flat["ece_mean_corrupted"] == pytest.approx(0.3)
    assert len(flat) == 2 * (4 + 2 + 2 + 1)


def test_incomplete_or_inconsistent_grid_is_refused():
    missing = {k: v for k, v in GRID.items() if k != ("noise", 2)}
    with pytest.raises(ValueError, match=r"missing \[\('noise', 2\)\]"):
        aggregate_corrupted(missing)
    inconsistent = {**GRID, ("noise", 2): {"accuracy": 0.4}}
    with pytest.raises(ValueError, match="same as every other cell"):
        aggregate_corrupted(inconsistent)
    with pytest.raises(ValueError, match="empty"):
        aggregate_corrupted({})


def test_mce_hand_computed():
    errors = {("blur", 1): 0.1, ("blur", 2): 0.3, ("noise", 1): 0.2, ("noise", 2): 0.6}
    reference = {("blur", 1): 0.2, ("blur", 2): 0.2, ("noise", 1): 0.4, ("noise", 2): 0.4}
    assert corruption_errors(errors, reference) == pytest.approx({"blur": 1.0, "noise": 1.0})
    reference[("noise", 2)] = 1.2
    assert mean_corruption_error(errors, reference) == pytest.approx((1.0 + 0.5) / 2)
    with pytest.raises(ValueError, match="same"):
        mean_corruption_error(errors, {("blur", 1): 0.2})


def test_flatten_results_reference_keys():
    flat = flatten_results({"accuracy": 0.96, "negative_log_likelihood": np.float32(0.16)},
                           ood={"svhn": {"auroc": 0.9, "fpr_at_95_tpr": 0.3}}, corrupted=GRID)
    assert flat["test/accuracy"] == 0.96
    assert isinstance(flat["test/negative_log_likelihood"], float)
    assert flat["ood/svhn_auroc"] == 0.9 and flat["ood/svhn_fpr_at_95_tpr"] == 0.3
    assert flat["test/accuracy_mean_corrupted"] == pytest.approx(0.7)
    assert flat["test/ece_noise_2"] == 0.6
    assert flat["test/ece_mean_severity_2"] == pytest.approx(0.45)
    assert set(flatten_results({"accuracy": 1.0}, split="validation")) == {"validation/accuracy"}
    with pytest.raises(ValueError, match="map to the key 'test/accuracy_blur'"):
        flatten_results({"accuracy_blur": 0.5}, corrupted=GRID)
    with pytest.raises(ValueError, match="split"):
        flatten_results({"accuracy": 1.0}, split="a/b")


def test_imagenet_c_mce_hand_computed_against_alexnet():
    from uncertainty_baselines.metrics import ALEXNET_IMAGENET_C_ERRORS, imagenet_c_mce
    # gaussian_noise: errors 0.5 at every severity -> CE = 0.5 / 0.886428; contrast: errors
    # 0.1, 0.2, 0.3, 0.4, 0.5 (mean 0.3) -> CE = 0.3 / 0.853204.
    accuracies = {("gaussian_noise", s): 0.5 for s in range(1, 6)}
    accuracies.update({("contrast", s): 1.0 - 0.1 * s for s in range(1, 6)})
    result = imagenet_c_mce(accuracies)
    assert result["ce_gaussian_noise"] == pytest.approx(0.5 / 0.886428)
    assert result["ce_contrast"] == pytest.approx(0.3 / 0.853204)
    assert result["mce"] == pytest.approx((0.5 / 0.886428 + 0.3 / 0.853204) / 2)
    # AlexNet itself scores mCE 1 (all 15 types).
    alexnet = {(t, s): 1.0 - e for t, e in ALEXNET_IMAGENET_C_ERRORS.items() for s in range(1, 6)}
    assert imagenet_c_mce(alexnet)["mce"] == pytest.approx(1.0)
    assert len(ALEXNET_IMAGENET_C_ERRORS) == 15
    with pytest.raises(ValueError, match="every severity 1-5"):
        imagenet_c_mce({("contrast", 1): 0.9, ("contrast", 3): 0.8})
    with pytest.raises(ValueError, match="no reference error"):
        imagenet_c_mce({("speckle_noise", s): 0.5 for s in range(1, 6)})


def test_imagenet_c_mce_from_flat_metrics_needs_every_severity():
    from uncertainty_baselines.metrics import imagenet_c_mce_from_flat
    flat = {f"test/accuracy_fog_{s}": 1.0 - 0.819324 / 2 for s in range(1, 6)}
    flat["test/accuracy"] = 0.7
    assert imagenet_c_mce_from_flat(flat) == pytest.approx({"test/corruption_error_fog": 0.5,
                                                          "test/mean_corruption_error": 0.5})
    del flat["test/accuracy_fog_5"]
    assert imagenet_c_mce_from_flat(flat) == {}
