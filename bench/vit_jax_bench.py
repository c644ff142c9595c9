"""The JAX baselines' training loop vs a bare jitted train step: same model, same batch, same run.

    flock /tmp/heavy.lock .venv/bin/python bench/vit_jax_bench.py \
        --config baselines/vit_jax/configs/cifar10_vit_deterministic.py --steps 5 --rounds 16

The loop under test is what `baselines/vit_jax/*.py` run for every epoch:
`jax_training.loop.train_steps`, which takes each global batch from a Python iterator of
NumPy dicts, puts it on the device mesh (`jax.device_put` with the batch sharding) and calls
the train step (jitted over the mesh, state donated, loss / accuracy sums kept on the
device), reading the sums back only at the end. The bare step is the same jitted function
called in a Python loop on one device-resident batch (no host-to-device copy, no iterator).
Both use the batch drawn once from the config's dataset (`--data_dir`: real CIFAR-10
preprocessed by ub.datasets; otherwise synthetic images of the same shape), are timed in
many short alternating rounds after a warm-up (compilation), so a shared machine's load
falls on both alike, and their total times are compared. Prints images/s, the ratio
loop / bare (target >= 0.95), the median of the per-round ratios and the CPU-time ratio.
"""
import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="baselines/vit_jax/configs/cifar10_vit_deterministic.py")
    parser.add_argument("--override", action="append", default=[], help="--config.<field>=value (repeatable)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--data_dir", default=None, help="prepared CIFAR-10 (else synthetic images)")
    args = parser.parse_args()

    import jax
    import jax.numpy as jnp

    from uncertainty_baselines.jax_training import config as config_lib, loop, method, optim

    config = config_lib.parse_config([f"--config={args.config}", *args.override])
    mesh = loop.make_mesh(config.num_devices)
    if args.data_dir:
        from uncertainty_baselines import datasets
        train = datasets.get(config.dataset, "train", data_dir=args.data_dir, seed=0)
        batch = next(train.load(batch_size=config.batch_size).as_numpy_iterator())
        source, num_classes = f"{config.dataset} from {args.data_dir}", train.num_classes
    else:
        rng = np.random.default_rng(0)
        batch = {"features": rng.standard_normal((config.batch_size, 32, 32, 3)).astype(np.float32),
                 "labels": rng.integers(10, size=config.batch_size).astype(np.int32)}
        source, num_classes = "synthetic images", 10
    batch = {"features": batch["features"], "labels": batch["labels"]}
    model = method.build_vit(config, num_classes)
    params = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, *batch["features"].shape[1:])))["params"]
    tx, _ = optim.make_optimizer(config, 10_000)
    step_fn = loop.make_train_step(model, tx, mesh, config.seed)
    rep = loop.replicated(mesh)

    host_params = jax.device_get(params)  # Each state gets its own buffers (steps donate them).

    def fresh_state():
        return loop.TrainState(jax.device_put(host_params, rep), jax.device_put(tx.init(host_params), rep),
                               jax.device_put(np.int32(0), rep), jax.device_put(loop.zero_sums(), rep))

    state = {"loop": fresh_state(), "bare": fresh_state()}
    images, labels = loop.put_batch(batch, mesh)

    def run_loop(n):
        def batches():
            while True:
                yield batch  # The host batch: copied to the devices every step, as in training.
        state["loop"], _ = loop.train_steps(state["loop"], step_fn, batches(), n, mesh, log_every_s=1e9)

    def run_bare(n):
        s = state["bare"]
        p, o, c, sums = s.params, s.opt_state, s.step, s.sums
        for _ in range(n):
            p, o, c, sums = step_fn.jitted(p, o, c, sums, images, labels)
        jax.block_until_ready(sums)
        state["bare"] = loop.TrainState(p, o, c, sums)

    for fn in (run_loop, run_bare):  # Warm-up: compilation and first touches.
        fn(2)
    # Many short alternating rounds (the order flips every round), so the load of a shared
    # machine falls on both alike; compared: the total time of each over all its rounds.
    totals = {"loop": [0.0, 0.0], "bare": [0.0, 0.0]}
    pair_ratios = []
    for r in range(args.rounds):
        order = (("loop", run_loop), ("bare", run_bare)) if r % 2 == 0 else (("bare", run_bare), ("loop", run_loop))
        seconds = {}
        for name, fn in order:
            wall, cpu = time.perf_counter(), time.process_time()
            fn(args.steps)
            seconds[name] = time.perf_counter() - wall
            totals[name][0] += seconds[name]
            totals[name][1] += time.process_time() - cpu
        pair_ratios.append(seconds["bare"] / seconds["loop"])
        print(f"round {r + 1}: loop {args.steps * config.batch_size / seconds['loop']:.1f}, "
              f"bare {args.steps * config.batch_size / seconds['bare']:.1f} images/s")
    images = args.rounds * args.steps * config.batch_size
    loop_rate, bare_rate = images / totals["loop"][0], images / totals["bare"][0]
    num_params = sum(np.size(x) for x in jax.tree_util.tree_leaves(params))
    print(f"\nViT {dict(config.model)} ({num_params:,} parameters), global batch {config.batch_size}, "
          f"{mesh.size} device(s), {source}, {args.rounds} rounds of {args.steps} steps each")
    print(f"training loop: {loop_rate:.1f} images/s; bare jitted step: {bare_rate:.1f} images/s")
    print(f"ratio loop / bare: {loop_rate / bare_rate:.3f} (total wall time; target >= 0.95), "
          f"median of the rounds {float(np.median(pair_ratios)):.3f}, "
          f"CPU time {totals['bare'][1] / totals['loop'][1]:.3f}")


if __name__ == "__main__":
    main()
