"""ImageNet ResNet-50 speed, same run: the baseline loop vs a bare `train_on_batch` (`train`),
and the eval input pipeline vs the eval step (`eval`).

    flock /tmp/heavy.lock .venv/bin/python bench/imagenet_bench.py train --data_dir /data/tfds
    flock /tmp/heavy.lock .venv/bin/python bench/imagenet_bench.py eval --data_dir /data/tfds

`train`: what `baselines/imagenet/deterministic.py` runs (the ub.datasets imagenet2012 training
stream: JPEG decode, random-resized crop, flip, normalise; `training.loop.make_train_fn`) vs
`model.train_on_batch` on one fixed NumPy batch, in alternating rounds (best round of each).
Target: loop / bare >= 0.95. `eval`: images/s of the evaluation stream alone (JPEG decode,
resize to 256, centre 224 crop, normalise, batched) vs the ResNet-50 prediction step on a
fixed batch. Target: pipeline / step >= 10. Any prepared imagenet2012 (a class subset too)
works; `--image_size` below 224 only for a quick check of the script itself.
"""
import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from cifar_train_loop_bench import timed  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("train", "eval"))
    parser.add_argument("--data_dir", required=True, help="TFDS folder holding a prepared imagenet2012")
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5, help="timed steps (batches) per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import keras
    import numpy as np

    import uncertainty_baselines as ub
    from uncertainty_baselines.training import distribution, loop, schedules

    strategy = distribution.get_strategy("cpu")
    kwargs = dict(input_shape=(args.image_size, args.image_size, 3), num_classes=1000, l2=1e-4, seed=0)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((args.batch, args.image_size, args.image_size, 3)).astype(np.float32)
    y = rng.integers(1000, size=args.batch).astype(np.int32)
    split = "train" if args.what == "train" else "test"
    data = ub.datasets.get("imagenet2012", split, data_dir=args.data_dir, image_size=args.image_size, seed=0)
    stream = data.load(batch_size=args.batch, strategy=strategy)
    with strategy.scope():
        model = ub.models.get("resnet50", **kwargs)
        optimizer = schedules.nesterov_sgd(0.1)

    if args.what == "train":
        train_fn = loop.make_train_fn(model, optimizer, strategy, args.batch)
        iterator = iter(stream)
        bare = ub.models.get("resnet50", **kwargs)
        bare.compile(optimizer=schedules.nesterov_sgd(0.1),
                     loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        rounds = {"baseline loop": lambda: (train_fn(iterator, args.steps), args.batch * args.steps)[1],
                  "bare train_on_batch": lambda: ([bare.train_on_batch(x, y) for _ in range(args.steps)],
                                                  args.batch * args.steps)[1]}
        train_fn(iterator, 1)
        bare.train_on_batch(x, y)
        target = "loop / bare >= 0.95"
    else:
        def pipeline():  # Each round reads the split afresh: decode + resize + crop, no model.
            n = 0
            for i, batch in enumerate(stream):
                n += int(batch["mask"].numpy().sum())
                if i + 1 == args.steps:
                    break
            return n

        def step():  # Keras' predict_on_batch on a fixed batch: the model alone.
            for _ in range(args.steps):
                model.predict_on_batch(x)
            return args.batch * args.steps
        rounds = {"eval input pipeline": pipeline, "eval step": step}
        model.predict_on_batch(x)
        target = "pipeline / step >= 10"
    results = {name: [] for name in rounds}
    for _ in range(args.rounds):  # Alternate so background load hits both alike.
        for name, fn in rounds.items():
            results[name].append(timed(fn))
    rates = {name: max(i / w for i, w, _ in v) for name, v in results.items()}
    print(f"ResNet-50 at {args.image_size} px, batch {args.batch}, {args.rounds} rounds x {args.steps} batches, "
          f"imagenet2012 {split} from {args.data_dir} ({data.num_examples} examples)")
    for name, rate in rates.items():
        print(f"{name:<22} {rate:8.1f} images/s (best round; rounds: "
              + ", ".join(f"{i / w:.1f}" for i, w, _ in results[name]) + ")")
    first, second = rates.values()
    print(f"ratio {first / second:.3f}  (target {target})")


if __name__ == "__main__":
    main()
