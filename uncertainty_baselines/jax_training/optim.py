"""optax optimizers and learning-rate schedules of the JAX baselines, from a config.

Config fields (all in the experiment config): `optimizer` ('adam', 'adamw' or 'sgd' with
`momentum` and `nesterov`), `lr.base` (the peak rate for the GLOBAL batch; it does not
change with the number of devices), `lr.warmup_steps` (linear from 0), `lr.decay_type`
('cosine' or 'linear' to zero at the last step, or 'constant'), `grad_clip_norm` (0: off),
`weight_decay` (adamw's decoupled decay). A method may scale the updates of some
parameters (BatchEnsemble's fast weights) with `multipliers`, a pytree of floats shaped
like the parameters: a true learning-rate multiplier for any optimizer, applied after it.
"""
from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import optax

OPTIMIZERS = ("adam", "adamw", "sgd")
DECAY_TYPES = ("cosine", "linear", "constant")


def schedule(lr: Mapping[str, Any], total_steps: int) -> optax.Schedule:
    """Linear warm-up from 0 to `lr.base` over `lr.warmup_steps`, then `lr.decay_type` to 0."""
    base, warmup, kind = float(lr["base"]), int(lr["warmup_steps"]), lr["decay_type"]
    warmup = min(warmup, max(total_steps - 1, 0))
    decay_steps = max(total_steps - warmup, 1)

    def fn(step: jax.Array) -> jax.Array:
        step = jnp.asarray(step, jnp.float32)
        ramp = base * jnp.minimum(1.0, (step + 1.0) / max(warmup, 1)) if warmup else jnp.asarray(base)
        t = jnp.clip((step - warmup) / decay_steps, 0.0, 1.0)
        if kind == "cosine":
            decayed = base * 0.5 * (1.0 + jnp.cos(jnp.pi * t))
        elif kind == "linear":
            decayed = base * (1.0 - t)
        else:
            decayed = jnp.asarray(base)
        return jnp.where(step < warmup, ramp, decayed)

    return fn


def scale_updates(multipliers: Any) -> optax.GradientTransformation:
    """Multiply each parameter's update by its entry of `multipliers` (a pytree of floats)."""
    def init(params: Any) -> optax.EmptyState:
        del params
        return optax.EmptyState()

    def update(updates: Any, state: optax.EmptyState, params: Any = None) -> tuple[Any, optax.EmptyState]:
        del params
        return jax.tree_util.tree_map(lambda u, m: u if m == 1.0 else u * m, updates, multipliers), state

    return optax.GradientTransformation(init, update)


def make_optimizer(config: Mapping[str, Any], total_steps: int, multipliers: Any = None
                   ) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """(the optimizer, its learning-rate schedule) a config asks for."""
    lr = schedule(config["lr"], total_steps)
    name = config["optimizer"]
    if name == "adam":
        base = optax.adam(lr, b1=config.get("beta1", 0.9), b2=config.get("beta2", 0.999))
    elif name == "adamw":
        base = optax.adamw(lr, b1=config.get("beta1", 0.9), b2=config.get("beta2", 0.999),
                           weight_decay=config.get("weight_decay", 0.0))
    elif name == "sgd":
        base = optax.sgd(lr, momentum=config.get("momentum", 0.9) or None, nesterov=config.get("nesterov", False))
    else:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    parts = []
    if config.get("grad_clip_norm", 0):
        parts.append(optax.clip_by_global_norm(float(config["grad_clip_norm"])))
    parts.append(base)
    if multipliers is not None:
        parts.append(scale_updates(multipliers))
    return optax.chain(*parts), lr
