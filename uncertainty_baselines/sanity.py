"""Sanity checks any classifier should pass before it is trained for real.

`run_sanity(build_model, x, y)` runs the checks careful practitioners run on a new network
and returns a `SanityReport` (its `table()` prints pass/fail with the measured figures):

1. initial_loss: the mean cross-entropy at initialisation, in training mode (batch
   statistics, as the first step sees it), is within `init_loss_rtol` x log(K) of log(K).
   For a Bayesian model this is the NLL of one sampled pass; its KL term (`kl`, if given)
   is not part of that loss but must be finite and >= 0, and is reported in the detail.
2. overfit: after `steps` Adam steps on the tiny batch the training-mode cross-entropy is
   below `overfit_loss` nats. Build the model with regularisation off; the harness measures
   the data term only.
3. trainable_variables_change: every trainable variable changes in the first step (a
   frozen or unused variable fails). Non-trainable variables that changed (e.g. BatchNorm
   moving statistics) are listed in the detail, not judged.
4. batch_independence: in eval mode, the gradient of example i's loss with respect to
   example j's input is exactly zero for j != i, and non-zero for j == i (so the check is
   not vacuous), for the examples in `independence_examples`. The gradient is taken with
   the backend's own autodiff: tf.GradientTape, jax.grad of `model.stateless_call`, or
   torch.autograd.
5. determinism: two models from `build_model()` have bitwise identical initial variables
   and, after `determinism_steps` identical steps, bitwise identical variables. The harness
   sets no global seed: the builder must seed its model.
6. zero_input: after the overfit, an all-zeros input scores an eval-mode cross-entropy at
   least `zero_input_margin` x log(K) nats worse than the real input.

A model with a member axis ([B, M, K] logits: BatchEnsemble, MIMO, rank-1) is checked one
member at a time through `member_view`.

Command: `python -m uncertainty_baselines.sanity --model wide_resnet --depth 10 --width 1`
(random inputs and random labels, so the overfit is pure memorisation; the backend comes
from KERAS_BACKEND; every member of a member-axis model, or `--member i`). It exits with
status 1 when a check fails.
"""
import argparse
import ast
import dataclasses
import inspect
import math
import sys
import time
from collections.abc import Callable, Sequence

import keras
import numpy as np

CHECKS = ("initial_loss", "overfit", "trainable_variables_change", "batch_independence",
          "determinism", "zero_input")


@dataclasses.dataclass(frozen=True)
class Check:
    """One check's outcome: the figure measured and the threshold it was held to."""
    name: str
    passed: bool
    measured: float
    threshold: str
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class SanityReport:
    """All checks run on one model, with the backend they ran on."""
    checks: tuple[Check, ...]
    backend: str

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def table(self) -> str:
        """A fixed-width pass/fail table, one row per check."""
        rows = [("check", "result", "measured", "threshold", "detail")]
        rows += [(c.name, "PASS" if c.passed else "FAIL", f"{c.measured:.4g}", c.threshold,
                  c.detail) for c in self.checks]
        widths = [max(len(r[k]) for r in rows) for k in range(4)]
        lines = ["  ".join(r[k].ljust(widths[k]) for k in range(4)) + "  " + r[4]
                 for r in rows]
        verdict = "ALL PASSED" if self.passed else "FAILED"
        return "\n".join(lines + [f"backend {self.backend}: {verdict}"])


def _snapshot(variables) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(v.value).copy() for v in variables]


def _cross_entropy(model: keras.Model, x: np.ndarray, y: np.ndarray, training: bool) -> float:
    """Mean cross-entropy of the logits on (x, y); leaves the model's state unchanged."""
    state = _snapshot(model.non_trainable_variables)
    logits = model(keras.ops.convert_to_tensor(x), training=training)
    loss = keras.losses.sparse_categorical_crossentropy(
        keras.ops.convert_to_tensor(y), logits, from_logits=True)
    for variable, value in zip(model.non_trainable_variables, state):
        variable.assign(value)
    return float(keras.ops.convert_to_numpy(keras.ops.mean(loss)))


def _example_loss_fn(y: np.ndarray, i: int) -> Callable:
    def loss_of_logits(logits):
        return keras.ops.sum(keras.losses.sparse_categorical_crossentropy(
            keras.ops.convert_to_tensor(y[i:i + 1]), logits[i:i + 1], from_logits=True))
    return loss_of_logits


def input_gradient(model: keras.Model, x: np.ndarray, y: np.ndarray, i: int) -> np.ndarray:
    """Gradient of example i's eval-mode loss w.r.t. the whole input batch (backend autodiff)."""
    loss_of_logits = _example_loss_fn(y, i)
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            loss = loss_of_logits(model(xt, training=False))
        grad = tape.gradient(loss, xt)
        return np.zeros_like(x) if grad is None else grad.numpy()
    if backend == "jax":
        import jax
        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]

        def loss_of_input(xx):
            logits, _ = model.stateless_call(trainable, non_trainable, xx, training=False)
            return loss_of_logits(logits)
        return np.asarray(jax.grad(loss_of_input)(jax.numpy.asarray(x)))
    if backend == "torch":
        import torch
        xt = torch.tensor(x, requires_grad=True)
        (grad,) = torch.autograd.grad(loss_of_logits(model(xt, training=False)), xt,
                                      allow_unused=True)
        return np.zeros_like(x) if grad is None else grad.detach().cpu().numpy()
    raise ValueError(f"no gradient check for backend {backend!r}; "
                     "valid: tensorflow, jax, torch")


def _check_independence(model, x, y, examples: Sequence[int]) -> Check:
    cross, own = 0.0, math.inf
    for i in examples:
        grad = np.abs(input_gradient(model, x, y, i)).reshape(len(x), -1).max(axis=1)
        own = min(own, float(grad[i]))
        cross = max(cross, float(np.delete(grad, i).max()))
    return Check("batch_independence", cross == 0.0 and own > 0.0, cross,
                 "max |dL_i/dx_j| = 0 for j != i, and |dL_i/dx_i| > 0",
                 f"examples {list(examples)}; smallest own-input gradient max {own:.3g}")


def _check_changed(model: keras.Model, trainable_before: list[np.ndarray],
                   non_trainable_before: list[np.ndarray]) -> Check:
    """Which of the model's variables differ from the snapshots taken before one step."""
    variables = model.trainable_variables
    unchanged = [v.path for v, b in zip(variables, trainable_before)
                 if np.array_equal(keras.ops.convert_to_numpy(v.value), b)]
    shown = ", ".join(unchanged[:4]) + (" ..." if len(unchanged) > 4 else "")
    changed_nt = sum(not np.array_equal(a, b) for a, b in
                     zip(_snapshot(model.non_trainable_variables), non_trainable_before))
    return Check("trainable_variables_change", not unchanged, float(len(unchanged)),
                 "0 unchanged trainable variables after one step",
                 (f"unchanged: {shown}; " if unchanged else "")
                 + f"{len(variables) - len(unchanged)}/{len(variables)} trainable changed; "
                 f"{changed_nt}/{len(non_trainable_before)} non-trainable changed (not judged)")


def _initial_loss_check(loss: float, log_k: float, rtol: float, kl_value: float | None) -> Check:
    """Check 1: the cross-entropy within rtol x log K of log K; a KL term, when given, must
    be finite and >= 0 and is reported (a Bayesian model's loss adds it, scaled by 1 / N)."""
    passed = abs(loss - log_k) <= rtol * log_k
    threshold = f"|loss - log K| <= {rtol} log K (log K = {log_k:.4g})"
    detail = "mean cross-entropy at init, training mode"
    if kl_value is not None:
        passed = passed and math.isfinite(kl_value) and kl_value >= 0
        threshold += "; KL finite and >= 0"
        detail += f"; KL {kl_value:.4g} nats, not in this loss"
    return Check("initial_loss", passed, loss, threshold, detail)


def _compiled(build_model: Callable[[], keras.Model], learning_rate: float) -> keras.Model:
    model = build_model()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def run_sanity(build_model: Callable[[], keras.Model], x: np.ndarray, y: np.ndarray, *,
               steps: int = 150, learning_rate: float = 3e-3, init_loss_rtol: float = 0.3,
               overfit_loss: float = 0.05, zero_input_margin: float = 0.5,
               determinism_steps: int = 2, independence_examples: Sequence[int] = (0, -1),
               checks: Sequence[str] = CHECKS, kl: Callable[[keras.Model], float] | None = None
               ) -> SanityReport:
    """Runs `checks` (a subset of `CHECKS`, see the module docstring) on a classifier.

    Args:
      build_model: returns a fresh, identically seeded Keras model mapping x to logits.
      x: a tiny batch (16-32 examples) of inputs, float32.
      y: its integer labels in [0, K), K the model's number of logits.
      steps: Adam steps of the overfit (`learning_rate`); the zero-input check uses them.
      init_loss_rtol, overfit_loss, zero_input_margin: thresholds of checks 1, 2 and 6.
      determinism_steps: training steps compared bitwise between the two builds (check 5).
      independence_examples: the examples i whose loss gradients check 4 takes.
      checks: which checks to run; training stops as soon as those need no more steps.
      kl: the model's KL term (e.g. `ub.layers.rank1_kl`), checked and reported by
        initial_loss; the harness trains on the cross-entropy only.
    """
    unknown = sorted(set(checks) - set(CHECKS))
    if unknown:
        raise ValueError(f"unknown check(s) {unknown}; valid checks: {list(CHECKS)}")
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int32)
    if x.shape[0] != y.shape[0] or y.ndim != 1 or x.shape[0] < 2:
        raise ValueError(f"x and y must hold the same number (>= 2) of examples, y a vector; "
                         f"got x {x.shape}, y {y.shape}")
    if steps < determinism_steps or determinism_steps < 1:
        raise ValueError(f"need steps >= determinism_steps >= 1, got {steps}, "
                         f"{determinism_steps}")
    model = _compiled(build_model, learning_rate)
    num_classes = int(model.output_shape[-1])
    if y.min() < 0 or y.max() >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes}) for a model with "
                         f"{num_classes} logits; got range [{y.min()}, {y.max()}]")
    log_k = math.log(num_classes)
    results = {}
    initial = _snapshot(model.variables)
    if "initial_loss" in checks:
        kl_value = None if kl is None else float(keras.ops.convert_to_numpy(kl(model)))
        results["initial_loss"] = _initial_loss_check(
            _cross_entropy(model, x, y, training=True), log_k, init_loss_rtol, kl_value)
    train_steps = (steps if {"overfit", "zero_input"} & set(checks) else
                   determinism_steps if "determinism" in checks else
                   int("trainable_variables_change" in checks))
    after_steps = None
    before = _snapshot(model.trainable_variables), _snapshot(model.non_trainable_variables)
    for step in range(1, train_steps + 1):
        model.train_on_batch(x, y)
        if step == 1 and "trainable_variables_change" in checks:
            results["trainable_variables_change"] = _check_changed(model, *before)
        if step == determinism_steps:
            after_steps = _snapshot(model.variables)
    if "overfit" in checks:
        loss = _cross_entropy(model, x, y, training=True)
        results["overfit"] = Check(
            "overfit", loss < overfit_loss, loss, f"loss < {overfit_loss} nats",
            f"training-mode cross-entropy after {steps} Adam steps (lr {learning_rate}); "
            f"eval mode {_cross_entropy(model, x, y, training=False):.4g}")
    if "zero_input" in checks:
        real = _cross_entropy(model, x, y, training=False)
        zero = _cross_entropy(model, np.zeros_like(x), y, training=False)
        results["zero_input"] = Check(
            "zero_input", zero - real >= zero_input_margin * log_k, zero - real,
            f"zero-input loss - real loss >= {zero_input_margin} log K",
            f"eval-mode loss after the overfit: zeros {zero:.4g}, real {real:.4g}")
    if "batch_independence" in checks:
        results["batch_independence"] = _check_independence(
            model, x, y, [i % len(x) for i in independence_examples])
    if "determinism" in checks:
        twin = _compiled(build_model, learning_rate)
        twin_initial = _snapshot(twin.variables)
        for _ in range(determinism_steps):
            twin.train_on_batch(x, y)
        diffs = [float(np.max(np.abs(a - b), initial=0.0)) for a, b in
                 zip(initial + after_steps, twin_initial + _snapshot(twin.variables))]
        same_count = len(twin_initial) == len(initial)
        results["determinism"] = Check(
            "determinism", same_count and max(diffs) == 0.0, max(diffs),
            "max |difference| = 0 (bitwise)",
            f"two builds, initial variables and after {determinism_steps} steps")
    return SanityReport(tuple(results[name] for name in CHECKS if name in results),
                        keras.backend.backend())


def member_view(model: keras.Model, member: int, copies: int = 1) -> keras.Model:
    """Member `member` of a model with a member axis ([B, M, K] logits) as a plain classifier;
    `copies` > 1 feeds the same example to every input slot (MIMO's channel-stacked inputs)."""
    inputs = keras.Input(model.input_shape[1:-1] + (model.input_shape[-1] // copies,))
    stacked = keras.layers.Concatenate()([inputs] * copies) if copies > 1 else inputs
    return keras.Model(inputs, model(stacked)[:, member])


def builder_kwargs(builder: Callable, input_shape: Sequence[int], num_classes: int,
                   seed: int, extra: dict) -> dict:
    """Keyword arguments for a registered constructor, whatever it calls shape and classes.

    Image models take `input_shape` and `num_classes`; the MLP takes `input_dim` and
    `num_outputs`. Unknown keys in `extra` raise ValueError listing the accepted ones.
    """
    params = inspect.signature(builder).parameters
    kwargs = {}
    if "input_shape" in params:
        kwargs["input_shape"] = tuple(input_shape)
    elif "input_dim" in params:
        if len(input_shape) != 1:
            raise ValueError(f"{builder.__name__} takes vectors: --input_shape must have one "
                             f"dimension, got {tuple(input_shape)}")
        kwargs["input_dim"] = input_shape[0]
    kwargs["num_classes" if "num_classes" in params else "num_outputs"] = num_classes
    if "seed" in params:
        kwargs["seed"] = seed
    unknown = sorted(set(extra) - set(params))
    if unknown:
        raise ValueError(f"{builder.__name__} has no argument(s) {unknown}; "
                         f"accepted: {sorted(params)}")
    return {**kwargs, **extra}


def _parse_kwarg(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    from uncertainty_baselines import models
    parser = argparse.ArgumentParser(
        prog="python -m uncertainty_baselines.sanity",
        description="Sanity-check a registered model on a random tiny batch "
                    "(backend from KERAS_BACKEND).")
    parser.add_argument("--model", required=True, choices=sorted(models.MODELS))
    parser.add_argument("--input_shape", default="32,32,3",
                        help="comma-separated shape of one example, e.g. 32,32,3 or 8")
    parser.add_argument("--num_classes", type=int, default=10)
    parser.add_argument("--batch", type=int, default=32, help="tiny batch size (16-32)")
    parser.add_argument("--steps", type=int, default=150, help="Adam steps of the overfit")
    parser.add_argument("--learning_rate", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0, help="model and data seed")
    parser.add_argument("--depth", type=int, help="wide_resnet depth (6n+4)")
    parser.add_argument("--width", type=int, help="wide_resnet width multiplier")
    parser.add_argument("--kwarg", action="append", default=[], type=_parse_kwarg,
                        metavar="KEY=VALUE", help="any other constructor argument; repeatable")
    parser.add_argument("--member", type=int, help="check only this member of a model with a member axis")
    parser.add_argument("--checks", default=",".join(CHECKS),
                        help=f"comma-separated subset of {','.join(CHECKS)}")
    args = parser.parse_args(argv)
    try:
        args.input_shape = tuple(int(d) for d in args.input_shape.split(","))
    except ValueError:
        parser.error(f"--input_shape must be comma-separated integers, got {args.input_shape}")
    if args.num_classes < 2 or args.batch < 2 or args.steps < 2:
        parser.error("--num_classes, --batch and --steps must each be >= 2")
    args.checks = tuple(c for c in args.checks.split(",") if c)
    bad = sorted(set(args.checks) - set(CHECKS))
    if bad:
        parser.error(f"unknown check(s) {bad}; valid: {','.join(CHECKS)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the harness on a registered model (each member of one with a member axis); returns
    0 when every check passes, 1 when one fails, 2 for a --member the model does not have."""
    from uncertainty_baselines import models
    args = _parse_args(argv)
    extra = dict(args.kwarg)
    if args.depth is not None:
        extra["depth"] = args.depth
    if args.width is not None:
        extra["width_multiplier"] = args.width
    builder = models.get_builder(args.model)
    kwargs = builder_kwargs(builder, args.input_shape, args.num_classes, args.seed, extra)
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((args.batch, *args.input_shape)).astype(np.float32)
    y = rng.integers(args.num_classes, size=args.batch)
    probe = builder(**kwargs)
    shape = probe.output_shape
    members = shape[1] if isinstance(shape, tuple) and len(shape) == 3 else None  # [B, M, K] logits.
    if args.member is not None and (members is None or not 0 <= args.member < members):
        print(f"--member={args.member}: {args.model} has {members or 'no'} members", file=sys.stderr)
        return 2
    views = [None] if members is None else [args.member] if args.member is not None else range(members)
    passed = True
    for member in views:
        copies = 1 if member is None else probe.input_shape[-1] // args.input_shape[-1]  # MIMO: M on channels.
        build = (lambda: builder(**kwargs)) if member is None else (
            lambda: member_view(builder(**kwargs), member, copies))
        start = time.perf_counter()
        report = run_sanity(build, x, y, steps=args.steps, learning_rate=args.learning_rate, checks=args.checks)
        print(f"{args.model}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
              f"{'' if member is None else f', member {member} of {members}'} on "
              f"{args.batch} random examples, random labels; {time.perf_counter() - start:.1f} s")
        print(report.table())
        passed = passed and report.passed
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
