"""Speed of a bare Keras `train_on_batch` of a Wide ResNet, against the machine's matmul peak.

    flock /tmp/ub_heavy.lock .venv/bin/python bench/model_step_bench.py \
        --depth 16 --width 4 --batch 128 --backends tensorflow,jax,torch

Each backend runs in its own subprocess (Keras fixes the backend at import) and times a
large float32 matmul on its backend just before the train steps; the machine's peak is the
best of these and of one measured here on TensorFlow (the machine is shared, so the
figures move with its load). Model FLOPs come from `ub.models.flops.flops_per_example`
(conv/dense multiply-adds x 2, x 3 for a training step), so fraction of peak =
FLOPs per image x images/s / peak.
"""
import argparse
import json
import os
import subprocess
import sys
import time

BACKENDS = ("tensorflow", "jax", "torch")


def images_per_second(depth: int, width: int, batch: int, steps: int, warmup: int) -> float:
    """Times `steps` Nesterov-SGD `train_on_batch` calls after `warmup` untimed ones."""
    import keras
    import numpy as np

    import uncertainty_baselines as ub
    model = ub.models.get("wide_resnet", input_shape=(32, 32, 3), depth=depth,
                          width_multiplier=width, num_classes=10)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 32, 32, 3)).astype(np.float32)
    y = rng.integers(10, size=batch).astype(np.int32)
    for _ in range(warmup):
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return batch * steps / (time.perf_counter() - start)


def _run_backend(backend: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--worker", "--depth", str(args.depth), "--width",
               str(args.width), "--batch", str(args.batch), "--steps", str(args.steps),
               "--warmup", str(args.warmup)]
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(command, env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{backend} worker failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=16)
    parser.add_argument("--width", type=int, default=4)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps (tracing)")
    parser.add_argument("--backends", default="tensorflow",
                        help=f"comma-separated subset of {','.join(BACKENDS)}")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        from uncertainty_baselines.models.flops import matmul_peak_flops
        peak = matmul_peak_flops()
        rate = images_per_second(args.depth, args.width, args.batch, args.steps, args.warmup)
        print(json.dumps({"images_per_second": rate, "matmul_peak": peak}))
        return
    backends = args.backends.split(",")
    if not set(backends) <= set(BACKENDS):
        parser.error(f"--backends must be a subset of {','.join(BACKENDS)}, got {args.backends}")

    os.environ["KERAS_BACKEND"] = "tensorflow"
    from uncertainty_baselines.models import flops, get
    peak = flops.matmul_peak_flops()
    model = get("wide_resnet", input_shape=(32, 32, 3), depth=args.depth,
                width_multiplier=args.width, num_classes=10)
    train_flops = flops.flops_per_example(model)
    print(f"WRN-{args.depth}-{args.width}, batch {args.batch}, 32x32x3: "
          f"{model.count_params():,} parameters, {train_flops / 1e9:.3f} GFLOP per image "
          f"per training step; {os.cpu_count()} CPU cores; TensorFlow float32 matmul "
          f"{peak / 1e9:.1f} GFLOP/s")
    runs = {backend: _run_backend(backend, args) for backend in backends}
    peak = max([peak] + [run["matmul_peak"] for run in runs.values()])
    print(f"machine float32 matmul peak (best measured) {peak / 1e9:.1f} GFLOP/s")
    print(f"{'backend':<12}{'images/s':>10}{'GFLOP/s':>10}{'of peak':>10}"
          f"{'own matmul GFLOP/s':>20}")
    for backend, run in runs.items():
        achieved = run["images_per_second"] * train_flops
        print(f"{backend:<12}{run['images_per_second']:>10.1f}{achieved / 1e9:>10.1f}"
              f"{achieved / peak:>10.2f}{run['matmul_peak'] / 1e9:>20.1f}")


if __name__ == "__main__":
    main()
