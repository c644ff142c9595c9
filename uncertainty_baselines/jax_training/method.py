"""What a JAX baseline script states about its method; everything else is shared.

A method names itself (configs say which method they are for), validates its own config
fields, builds its Flax model from the config and, optionally, gives per-parameter
learning-rate multipliers. The model's logits carry a member axis ([B, M, K]) when the method
is an ensemble: the loss is then the members' mean cross-entropy, the prediction their mean
softmax, and evaluation adds the ensemble and per-member metrics, with no further code.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import ml_collections

from uncertainty_baselines.jax_training import vit


def no_errors(config: ml_collections.ConfigDict) -> list[str]:
    del config
    return []


def build_vit(config: ml_collections.ConfigDict, num_classes: int) -> nn.Module:
    """The ViT of `config.model` (fields of `jax_training.vit.ViT`)."""
    return vit.ViT(num_classes=num_classes, **config.model.to_dict())


@dataclasses.dataclass(frozen=True)
class Method:
    """name: the value of `config.method` this script runs; validate(config) -> errors;
    build_model(config, num_classes) -> Flax module; lr_multipliers(config, params) -> a
    pytree of floats like params (None: all 1); ood_scores: kinds of ub.metrics.ood_score."""
    name: str
    build_model: Callable[[ml_collections.ConfigDict, int], nn.Module] = build_vit
    validate: Callable[[ml_collections.ConfigDict], list[str]] = no_errors
    lr_multipliers: Callable[[ml_collections.ConfigDict, Any], Any] | None = None
    ood_scores: Sequence[str] = ("msp",)


def multipliers_by_name(params: Any, factor: float, marker: str = "fast_weight_") -> Any:
    """`factor` for every parameter whose name contains `marker`, 1 for the others."""
    def one(path: tuple[Any, ...], leaf: Any) -> float:
        del leaf
        return factor if any(marker in str(getattr(k, "key", k)) for k in path) else 1.0
    return jax.tree_util.tree_map_with_path(one, params)
