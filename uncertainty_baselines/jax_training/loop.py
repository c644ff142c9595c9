"""The jitted, data-parallel train and predict steps and the host loop that feeds them.

Data parallelism with `jax.sharding`: a 1-D mesh over N devices (axis 'data'); parameters
and optimizer state are replicated, every global batch is split along its first axis, and
the step is one jitted program over the GLOBAL batch (XLA inserts the gradient all-reduce).
The loss is the mean over the global batch whatever N is, so N devices compute what one
device computes up to the order of float summation (tested: 2 CPU devices vs 1).

The step returns nothing to the host: the loss sum, correct predictions and example count
accumulate on the device inside the step's own output (no extra dispatch per step) and are
read once per log interval or epoch, so the host never waits for a step and prepares the
next batch while the device computes (JAX's asynchronous dispatch).
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Iterator

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

Batch = dict[str, np.ndarray]
Sums = dict[str, jax.Array]


class NonFiniteError(FloatingPointError):
    """Training or evaluation produced NaN or infinite values."""


def make_mesh(num_devices: int = 0) -> Mesh:
    """A 1-D data-parallel mesh over the first `num_devices` devices (0: all)."""
    devices = jax.devices()
    n = num_devices or len(devices)
    if not 1 <= n <= len(devices):
        raise ValueError(f"num_devices={num_devices}, but {len(devices)} device(s) are visible "
                         "(CPU: XLA_FLAGS=--xla_force_host_platform_device_count=N)")
    return Mesh(np.asarray(devices[:n]), ("data",))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec("data"))


def member_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example cross-entropy [B] of logits [B, K], or the mean over members of [B, M, K]."""
    log_p = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    if logits.ndim == 3:
        return -jnp.mean(jnp.take_along_axis(log_p, labels[:, None, None], axis=-1)[..., 0], axis=1)
    return -jnp.take_along_axis(log_p, labels[:, None], axis=-1)[:, 0]


def mean_probs(logits: jax.Array) -> jax.Array:
    """Softmax of logits [B, K]; with a member axis [B, M, K], the members' mean softmax."""
    probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    return probs.mean(axis=1) if probs.ndim == 3 else probs


def zero_sums() -> dict[str, np.ndarray]:
    return {"loss_sum": np.float32(0), "correct": np.float32(0), "examples": np.float32(0)}


@dataclasses.dataclass
class TrainState:
    """What a step changes: parameters, optimizer state, the step counter (seeds dropout) and
    the running sums of the current epoch (all device arrays)."""
    params: Any
    opt_state: Any
    step: jax.Array
    sums: Sums


def make_train_step(model: nn.Module, tx: optax.GradientTransformation, mesh: Mesh, seed: int
                    ) -> Callable[[TrainState, jax.Array, jax.Array], TrainState]:
    """step(state, images, labels) -> state: one optimizer step on a global batch, jitted
    for `mesh` (state replicated and donated, batch split over 'data'). Dropout's key is
    fold_in(key(seed), step), so a resumed run draws what an uninterrupted one draws."""
    base_key = jax.random.key(seed)

    def step(params, opt_state, step_count, sums, images, labels):
        def loss_fn(p):
            logits = model.apply({"params": p}, images, train=True,
                                 rngs={"dropout": jax.random.fold_in(base_key, step_count)})
            return member_cross_entropy(logits, labels).mean(), logits

        (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        batch = jnp.float32(labels.shape[0])
        correct = jnp.sum(jnp.argmax(mean_probs(logits), -1) == labels).astype(jnp.float32)
        sums = {"loss_sum": sums["loss_sum"] + loss * batch, "correct": sums["correct"] + correct,
                "examples": sums["examples"] + batch}
        return params, opt_state, step_count + 1, sums

    rep, data = replicated(mesh), batch_sharded(mesh)
    jitted = jax.jit(step, in_shardings=(rep, rep, rep, rep, data, data), out_shardings=(rep, rep, rep, rep),
                     donate_argnums=(0, 1, 2, 3))

    def run(state: TrainState, images: jax.Array, labels: jax.Array) -> TrainState:
        return TrainState(*jitted(state.params, state.opt_state, state.step, state.sums, images, labels))

    run.jitted = jitted  # For benchmarks: the bare step.
    return run


def make_predict_step(model: nn.Module, mesh: Mesh) -> Callable[[Any, jax.Array], dict[str, jax.Array]]:
    """predict(params, images) -> {'logits', 'probs'[, 'member_probs']} in eval mode, jitted
    for `mesh`; with a member axis `probs` is the members' mean softmax."""

    def predict(params, images):
        logits = model.apply({"params": params}, images, train=False).astype(jnp.float32)
        out = {"logits": logits, "probs": mean_probs(logits)}
        if logits.ndim == 3:
            out["member_probs"] = jax.nn.softmax(logits, axis=-1)
        return out

    data = batch_sharded(mesh)
    return jax.jit(predict, in_shardings=(replicated(mesh), data), out_shardings=data)


def put_batch(batch: Batch, mesh: Mesh) -> tuple[jax.Array, jax.Array]:
    """A host global batch's images and labels, split over the mesh's devices."""
    sharding = batch_sharded(mesh)
    return (jax.device_put(batch["features"], sharding),
            jax.device_put(batch["labels"].astype(np.int32), sharding))


def host_sums(state: TrainState) -> dict[str, float]:
    """The epoch's running sums on the host (waits for the steps dispatched so far)."""
    return {k: float(v) for k, v in jax.device_get(state.sums).items()}


def train_steps(state: TrainState, step_fn: Callable[[TrainState, jax.Array, jax.Array], TrainState],
                batches: Iterator[Batch], num_steps: int, mesh: Mesh, *, log_every_s: float = 30.0,
                on_log: Callable[[int, dict[str, float]], None] | None = None) -> tuple[TrainState, float]:
    """Run `num_steps` steps from `batches`; returns the state (blocked until done) and the
    wall seconds. Every `log_every_s` it reads the running sums (one device sync), calls
    `on_log(steps done, sums)` and stops with NonFiniteError on a non-finite loss."""
    start = last_log = time.perf_counter()
    for i in range(num_steps):
        images, labels = put_batch(next(batches), mesh)
        state = step_fn(state, images, labels)
        now = time.perf_counter()
        if now - last_log >= log_every_s:
            last_log = now
            sums = check_finite_sums(state, f"steps up to {i + 1} of this epoch")
            if on_log is not None:
                on_log(i + 1, sums)
    jax.block_until_ready(state.sums)
    return state, time.perf_counter() - start


def check_finite_sums(state: TrainState, where: str) -> dict[str, float]:
    """The running sums, or NonFiniteError when the loss sum is NaN or infinite."""
    sums = host_sums(state)
    if not math.isfinite(sums["loss_sum"]):
        raise NonFiniteError(f"non-finite training loss ({sums['loss_sum']}) in {where}")
    return sums
