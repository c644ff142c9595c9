"""Bitwise repeatability and step time of a training step with TF's inter-op threads at
its default and at 1 (`training.loop.run_ops_one_at_a_time`), on cores shared with a load.

Each setting runs in its own process (the thread counts are fixed when TF starts), in
alternating rounds: WRN-16-2 on one fixed batch of 128 CIFAR-shaped images, op determinism
on; every trial computes the gradients again and counts as differing when any gradient is
not bitwise equal to the first trial's; then SGD steps are timed. `--load` runs that many
busy processes (the same step in a loop) beside the measurement, as when another training
or a test suite shares the machine.

    .venv/bin/python bench/determinism_bench.py --load 1 --rounds 2 --trials 20 --steps 30
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time


def child(inter_op: int | None, trials: int, steps: int, forever: bool) -> None:
    """Measure (or, with `forever`, only load the cores) in this process and print one line."""
    import numpy as np
    import tensorflow as tf
    if inter_op is not None:
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    import keras
    from uncertainty_baselines import models as ub_models
    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(0)
    model = ub_models.get("wide_resnet", input_shape=[32, 32, 3], depth=16, width_multiplier=2, num_classes=10,
                          l2=5e-4, seed=0, initializer="glorot_uniform")
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(128, 32, 32, 3)).astype("float32"))
    y = tf.constant(rng.integers(0, 10, size=128))

    @tf.function
    def gradients():
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
        return tape.gradient(loss, model.trainable_variables)

    @tf.function
    def step():
        optimizer.apply_gradients(zip(gradients(), model.trainable_variables))

    if forever:
        while True:
            step()
    first = [g.numpy() for g in gradients()]
    differing = sum(any(not np.array_equal(a, b.numpy()) for a, b in zip(first, gradients())) for _ in range(trials))
    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _ = model.trainable_variables[0].numpy()
    print(f"{differing} {1000 * (time.perf_counter() - start) / steps:.1f}", flush=True)


def measure(inter_op: int | None, args: argparse.Namespace) -> tuple[int, float]:
    """(differing trials, ms per step) from a fresh process with `inter_op` threads."""
    command = [sys.executable, __file__, "--child", str(inter_op or 0), "--trials", str(args.trials),
               "--steps", str(args.steps)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout.split()
    return int(out[-2]), float(out[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--load", type=int, default=1, help="busy processes beside the measurement")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--trials", type=int, default=20, help="gradient recomputations per measurement")
    parser.add_argument("--steps", type=int, default=30, help="timed SGD steps per measurement")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--forever", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child or None, args.trials, args.steps, args.forever)
        return
    load = [subprocess.Popen([sys.executable, __file__, "--child", "0", "--forever"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(args.load)]
    try:
        results: dict[str, list[tuple[int, float]]] = {"default": [], "1": []}
        for _ in range(args.rounds):
            for name, inter_op in (("default", None), ("1", 1)):
                results[name].append(measure(inter_op, args))
                print(f"inter-op threads {name}: {results[name][-1][0]} of {args.trials} trials differ, "
                      f"{results[name][-1][1]:.1f} ms/step", flush=True)
    finally:
        for process in load:
            process.kill()
    best = {name: min(ms for _, ms in runs) for name, runs in results.items()}
    print(f"with {args.load} busy process(es): differing trials, default {sum(d for d, _ in results['default'])} "
          f"/ one op at a time {sum(d for d, _ in results['1'])} of {args.rounds * args.trials}; "
          f"step time ratio (one at a time / default, best rounds) {best['1'] / best['default']:.3f}")


if __name__ == "__main__":
    main()
