"""The method flags that the image baselines share whatever their backbone (the CIFAR Wide
ResNet and the ImageNet ResNet-50 scripts of one method define, check and turn them into
model kwargs and seams alike): MC dropout, BatchEnsemble and SNGP (whose GP-covariance check
and epoch hook the CLINC SNGP script shares too).

A script calls `define_<method>_flags(...)` at import (its defaults as keyword arguments),
adds `<METHOD>_FLAGS` to its Method's `method_flags`, its backbone's errors to
`<method>_errors(config)`, and `<method>_kwargs(config)` to its backbone's model kwargs.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

from absl import flags

from uncertainty_baselines.layers.batchensemble import (REFERENCE_RANDOM_SIGN_INIT,
                                                      random_sign_init_error)
from uncertainty_baselines.layers.gaussian_process import exact_precision
from uncertainty_baselines.training import flags as ub_flags

DROPOUT_FLAGS = ("dropout_rate", "filterwise_dropout", "num_dropout_samples")
BATCHENSEMBLE_FLAGS = ("ensemble_size", "fast_weight_lr_multiplier", "random_sign_init")
SNGP_FLAGS = ("spec_norm_bound", "spec_norm_iterations", "num_inducing", "gp_length_scale", "gp_input_dim",
              "gp_ridge_penalty", "gp_covariance_momentum", "gp_mean_field_factor", "dropout_rate")


def define_dropout_flags(dropout_rate: float = 0.1, num_dropout_samples: int = 5) -> None:
    """--dropout_rate, --filterwise_dropout, --num_dropout_samples of MC dropout."""
    flags.DEFINE_float("dropout_rate", dropout_rate, "Dropout rate on the residual branches, in [0, 1).")
    flags.DEFINE_bool("filterwise_dropout", False, "Drop whole feature maps instead of elements.")
    flags.DEFINE_integer("num_dropout_samples", num_dropout_samples, "Stochastic forward passes averaged at "
                         "evaluation.")


def dropout_errors(config: Any) -> list[str]:
    """Messages for invalid MC dropout flags (empty when valid)."""
    errors = [] if 0 <= config.dropout_rate < 1 else [f"--dropout_rate must be in [0, 1), got {config.dropout_rate}"]
    return errors + ub_flags.at_least_one_errors(config, "num_dropout_samples")


def dropout_kwargs(config: Any) -> dict[str, Any]:
    """The MC dropout model kwargs (besides the backbone's)."""
    return {"dropout_rate": config.dropout_rate, "filterwise": config.filterwise_dropout}


def define_batchensemble_flags(ensemble_size: int = 4, fast_weight_lr_multiplier: float = 0.5) -> None:
    """--ensemble_size, --fast_weight_lr_multiplier and --random_sign_init of BatchEnsemble."""
    flags.DEFINE_integer("ensemble_size", ensemble_size, "Members M.")
    flags.DEFINE_float("fast_weight_lr_multiplier", fast_weight_lr_multiplier,
                       "Learning-rate multiplier of the fast weights (r, s).")
    define_random_sign_flag("fast weight", REFERENCE_RANDOM_SIGN_INIT)


def define_random_sign_flag(what: str, default: float) -> None:
    """--random_sign_init, the reference's flag of that name for how a `what` (BatchEnsemble
    fast weight, rank-1 factor location) starts (``ub.layers.sign_initializer``)."""
    flags.DEFINE_float("random_sign_init", default, f"How a {what} starts: > 0, a random sign, +1 "
                       "with this probability (1: no sign flips); < 0, a draw from N(1, this^2), "
                       "as the reference's BatchEnsemble default -0.5.")


def random_sign_errors(config: Any) -> list[str]:
    """Message for an invalid --random_sign_init (empty when valid)."""
    error = random_sign_init_error(config.random_sign_init)
    return [f"--{error}"] if error else []


def batchensemble_kwargs(config: Any) -> dict[str, Any]:
    """The BatchEnsemble registry kwargs the flags set (beside the backbone's)."""
    return {"ensemble_size": config.ensemble_size, "random_sign_init": config.random_sign_init}


def batchensemble_errors(config: Any) -> list[str]:
    """Messages for invalid BatchEnsemble flags (empty when valid)."""
    errors = ub_flags.at_least_one_errors(config, "ensemble_size") + random_sign_errors(config)
    if config.fast_weight_lr_multiplier < 0:
        errors.append(f"--fast_weight_lr_multiplier must be >= 0, got {config.fast_weight_lr_multiplier}")
    return errors


def fast_weight_scales(multiplier: float) -> Callable[[Any], Sequence[float]]:
    """A `Method.learning_rate_scales`: `multiplier` for every fast weight, 1 for every other
    trainable variable."""
    def scales(model: Any) -> list[float]:
        from uncertainty_baselines import layers
        fast = {id(w) for w in layers.fast_weights(model)}
        return [multiplier if id(v) in fast else 1.0 for v in model.trainable_variables]
    return scales


def define_sngp_flags(*, gp_length_scale: float = 20.0, gp_mean_field_factor: float = 20.0,
                      gp_input_dim: int = 128, dropout_rate: float = 0.1) -> None:
    """The SNGP flags (spectral norm, random-feature GP, filter-wise dropout); the keyword
    arguments set the defaults that differ between backbones."""
    flags.DEFINE_float("spec_norm_bound", 6.0, "Bound on every conv's operator norm, > 0.")
    flags.DEFINE_integer("spec_norm_iterations", 1, "Power iterations per training step, >= 1.")
    flags.DEFINE_integer("num_inducing", 1024, "Random features of the GP output layer, >= 1.")
    flags.DEFINE_float("gp_length_scale", gp_length_scale, "RBF length-scale of the GP on its layer-normalised "
                       "inputs, > 0.")
    flags.DEFINE_integer("gp_input_dim", gp_input_dim, "Random projection of the pooled features before the GP; "
                         "0: none.")
    flags.DEFINE_float("gp_ridge_penalty", 1.0, "Ridge penalty of the GP's posterior precision, > 0.")
    flags.DEFINE_float("gp_covariance_momentum", -1.0, "<= 0: exact precision over each epoch (reset at "
                       "its start); in (0, 1): discounted moving average, never reset.")
    flags.DEFINE_float("gp_mean_field_factor", gp_mean_field_factor, "lambda of the mean-field logits; < 0: the "
                       "posterior mode.")
    flags.DEFINE_float("dropout_rate", dropout_rate, "Filter-wise dropout rate on the residual branches in "
                       "training, in [0, 1).")


def sngp_errors(config: Any) -> list[str]:
    """Messages for invalid SNGP flags (empty when valid)."""
    errors = (ub_flags.positive_errors(config, "spec_norm_bound", "gp_length_scale", "gp_ridge_penalty")
              + ub_flags.at_least_one_errors(config, "spec_norm_iterations", "num_inducing"))
    if config.gp_input_dim < 0:
        errors.append(f"--gp_input_dim must be >= 0 (0: no projection), got {config.gp_input_dim}")
    errors += gp_covariance_momentum_errors(config)
    if not 0 <= config.dropout_rate < 1:
        errors.append(f"--dropout_rate must be in [0, 1), got {config.dropout_rate}")
    return errors


def gp_covariance_momentum_errors(config: Any) -> list[str]:
    """Message for an invalid --gp_covariance_momentum (empty when valid)."""
    if config.gp_covariance_momentum < 1:
        return []
    return [f"--gp_covariance_momentum must be <= 0 (exact) or in (0, 1) (discounted), "
            f"got {config.gp_covariance_momentum}"]


def sngp_kwargs(config: Any) -> dict[str, Any]:
    """The SNGP model kwargs (besides the backbone's)."""
    return {"spec_norm_bound": config.spec_norm_bound, "spec_norm_iterations": config.spec_norm_iterations,
            "num_inducing": config.num_inducing, "gp_length_scale": config.gp_length_scale,
            "gp_input_dim": config.gp_input_dim or None, "gp_ridge_penalty": config.gp_ridge_penalty,
            "gp_covariance_momentum": config.gp_covariance_momentum,
            "gp_mean_field_factor": config.gp_mean_field_factor, "dropout_rate": config.dropout_rate}


def reset_precision(model: Any, epoch: int) -> None:
    """SNGP's `on_epoch_start` with exact precision: back to ridge * I before each epoch's
    first step (the precision covers one epoch)."""
    from uncertainty_baselines import layers
    layers.reset_covariances(model)


def sngp_epoch_hook(config: Any) -> Callable[[Any, int], None] | None:
    """`reset_precision` when the precision is exact (--gp_covariance_momentum <= 0), else None."""
    return reset_precision if exact_precision(config.gp_covariance_momentum) else None
