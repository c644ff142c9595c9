"""The CIFAR baseline's own training loop vs a bare Keras `train_on_batch`, same model, same run.

    flock /tmp/ub_heavy.lock .venv/bin/python bench/cifar_train_loop_bench.py \
        --depth 16 --width 4 --batch 128 --data_dir /work/data

The loop under test is what `baselines/cifar/deterministic.py` runs: the ub.datasets
CIFAR-10 training stream (decode, pad-crop-flip, normalise; synthetic images of the same
shape when --data_dir is not given), `training.loop.make_train_fn` (Nesterov SGD, L2 loss
term, accuracy/loss sums) under a tf.distribute strategy, `steps_per_loop` steps per call.
The bare step is `model.train_on_batch` on one fixed NumPy batch (no input pipeline, no
metrics). Both are timed in alternating rounds; the best round of each is compared. Also
prints the achieved fraction of the measured matmul peak: FLOPs per image x images/s / peak.
Target: ratio >= 0.95.
"""
import argparse
import time

import numpy as np


def timed(fn):
    """Run `fn` and return (its images, wall seconds, process CPU seconds)."""
    wall, cpu = time.perf_counter(), time.process_time()
    images = fn()
    return images, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=16)
    parser.add_argument("--width", type=int, default=4)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps_per_loop", type=int, default=10)
    parser.add_argument("--data_dir", default=None, help="prepared CIFAR-10 (else synthetic images)")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    import uncertainty_baselines as ub
    from uncertainty_baselines.models import flops
    from uncertainty_baselines.training import distribution, loop, schedules

    strategy = distribution.get_strategy("cpu")
    kwargs = dict(input_shape=(32, 32, 3), depth=args.depth, width_multiplier=args.width,
                  num_classes=10, l2=2e-4, seed=0)
    if args.data_dir:
        train = ub.datasets.get("cifar10", "train", data_dir=args.data_dir, seed=0).load(
            batch_size=args.batch, strategy=strategy)
        source = f"CIFAR-10 from {args.data_dir}"
    else:
        rng = np.random.default_rng(0)
        images = {"features": rng.standard_normal((args.batch, 32, 32, 3)).astype(np.float32),
                  "labels": rng.integers(10, size=args.batch).astype(np.int32)}
        train = strategy.experimental_distribute_dataset(
            tf.data.Dataset.from_tensor_slices(images).repeat().batch(args.batch).prefetch(2))
        source = "synthetic images"

    with strategy.scope():
        model = ub.models.get("wide_resnet", **kwargs)
        optimizer = schedules.nesterov_sgd(0.1)
    train_fn = loop.make_train_fn(model, optimizer, strategy, args.batch)
    iterator = iter(train)

    bare = ub.models.get("wide_resnet", **kwargs)
    bare.compile(optimizer=schedules.nesterov_sgd(0.1),
                 loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((args.batch, 32, 32, 3)).astype(np.float32)
    y = rng.integers(10, size=args.batch).astype(np.int32)

    def loop_round():
        done = 0
        while done < args.steps:
            n = min(args.steps_per_loop, args.steps - done)
            train_fn(iterator, n)
            done += n
        return args.batch * args.steps

    def bare_round():
        for _ in range(args.steps):
            bare.train_on_batch(x, y)
        return args.batch * args.steps

    train_fn(iterator, min(2, args.steps_per_loop))  # Warm-up: tracing, pipeline start.
    bare.train_on_batch(x, y)
    bare.train_on_batch(x, y)
    rounds = {"loop": [], "bare": []}
    for _ in range(args.rounds):  # Alternate so background load hits both alike.
        rounds["loop"].append(timed(loop_round))
        rounds["bare"].append(timed(bare_round))
    wall = {k: max(i / w for i, w, _ in v) for k, v in rounds.items()}
    cpu = {k: max(i / c for i, _, c in v) for k, v in rounds.items()}
    peak = flops.matmul_peak_flops()
    per_image = flops.flops_per_example(model, training=True)
    print(f"WRN-{args.depth}-{args.width}, global batch {args.batch}, {source}, "
          f"{args.rounds} rounds x {args.steps} steps, jit_compile of bare step: {bare.jit_compile}")
    for key, label in (("loop", "baseline loop (data + step + metrics)"), ("bare", "bare train_on_batch")):
        print(f"{label:<38} {wall[key]:7.1f} images/s wall, {cpu[key]:6.2f} images/CPU-s  (wall rounds: "
              + ", ".join(f"{i / w:.1f}" for i, w, _ in rounds[key]) + ")")
    print(f"ratio loop / bare: {wall['loop'] / wall['bare']:.3f} by wall time, "
          f"{cpu['loop'] / cpu['bare']:.3f} by CPU time  (target >= 0.95)")
    print(f"matmul peak {peak / 1e9:.1f} GFLOP/s; {per_image / 1e9:.3f} GFLOP per training image; "
          f"fraction of peak: loop {per_image * wall['loop'] / peak:.3f}, bare {per_image * wall['bare'] / peak:.3f}")

if __name__ == "__main__":
    main()
