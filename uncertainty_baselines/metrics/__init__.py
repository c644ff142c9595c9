"""Metrics for accuracy, calibration, OOD detection, selective prediction, corruption
robustness, conformal prediction sets and regression: framework-free NumPy, streaming
(add_batch / result / reset / merge) where the metric allows it. Conventions: docs/metrics.md."""
from uncertainty_baselines.metrics._arrays import to_numpy
from uncertainty_baselines.metrics.classification import (
    AdaptiveCalibrationError, ClassificationMetrics, bin_index)
from uncertainty_baselines.metrics.conformal import (
    SplitConformal, conformal_threshold, label_scores, raps_parameters, set_coverage, set_size)
from uncertainty_baselines.metrics.corruption import (
    ALEXNET_IMAGENET_C_ERRORS, aggregate_corrupted, corruption_errors, imagenet_c_mce, imagenet_c_mce_from_flat,
    mean_corruption_error)
from uncertainty_baselines.metrics.ensemble import (
    EnsembleMetrics, disagreement, ensemble_nll, entropy, gibbs_nll, log_mean_exp,
    mutual_information, predictive_entropy)
from uncertainty_baselines.metrics.ood import (
    LOGIT_SCORE_KINDS, SCORE_KINDS, OODMetrics, auroc, average_precision, fpr_at_tpr, ood_score,
    roc_curve)
from uncertainty_baselines.metrics.regression import (
    RegressionMetrics, central_interval, gaussian_crps, gaussian_nll, interval_coverage,
    interval_width, predictive_mean, rmse)
from uncertainty_baselines.metrics.results import flatten_results
from uncertainty_baselines.metrics.selective import (
    accuracy_at_coverage, aurc, cumulative_correct, oracle_collaborative_accuracy,
    risk_coverage_curve)
from uncertainty_baselines.metrics.temperature import apply_temperature, fit_temperature

__all__ = [
    "ALEXNET_IMAGENET_C_ERRORS", "AdaptiveCalibrationError", "ClassificationMetrics", "EnsembleMetrics", "OODMetrics", "SplitConformal",
    "LOGIT_SCORE_KINDS", "RegressionMetrics", "SCORE_KINDS", "accuracy_at_coverage", "aggregate_corrupted",
    "apply_temperature", "aurc", "auroc", "average_precision", "bin_index",
    "central_interval", "conformal_threshold", "corruption_errors", "cumulative_correct", "disagreement",
    "ensemble_nll", "entropy", "fit_temperature", "flatten_results", "fpr_at_tpr",
    "gaussian_crps", "gaussian_nll", "gibbs_nll", "imagenet_c_mce", "imagenet_c_mce_from_flat",
    "interval_coverage", "interval_width",
    "label_scores", "log_mean_exp", "mean_corruption_error", "mutual_information", "ood_score",
    "oracle_collaborative_accuracy", "predictive_entropy", "predictive_mean", "raps_parameters",
    "risk_coverage_curve", "rmse", "roc_curve", "set_coverage", "set_size", "to_numpy",
]
