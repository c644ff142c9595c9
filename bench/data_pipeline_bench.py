"""Speed of the CIFAR-10 input pipelines against what a WRN-16-4 training step consumes.

    flock /tmp/ub_heavy.lock .venv/bin/python bench/data_pipeline_bench.py \
        --data_dir DIR    # prepared with: python -m uncertainty_baselines.datasets.prepare \
                          #   cifar10 --source ../shared/data/cifar10-jpeg.zip --data_dir DIR

Training pipeline: read, shuffle, decode PNG, pad-4 + random crop + flip, normalise,
batch 128 (``ub.datasets.get('cifar10', 'train').load(batch_size=128)``); evaluation: the
whole test split, decode + normalise, padded and masked batches of 128. Without
``--data_dir`` it runs on mocked TFDS (tests/datasets/mock_tfds_data.py) serving
``--mock_examples`` random images PNG-encoded in memory, and says so. The WRN-16-4 rate is
a bare Keras ``train_on_batch`` at batch 128 (``bench/model_step_bench.py``). Targets:
training >= 3,000 images/s, evaluation >= 10,000 images/s (uncached; the cached rate of
later evaluation passes is printed too). The machine is shared: the script also prints
images per CPU-second of its own process and the load average.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import pathlib
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf

import uncertainty_baselines as ub

REPO = pathlib.Path(__file__).resolve().parents[1]
TRAIN_TARGET, EVAL_TARGET = 3_000, 10_000


class Rate:
    """Images per wall-clock second and per CPU-second of this process (all its threads).

    The machine is shared, so wall-clock rates fall with other users' load; images per
    CPU-second measure the pipeline's own cost, and x2 bounds the rate on 2 free cores.
    """

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def stop(self, images: int) -> tuple[float, float]:
        return (images / (time.perf_counter() - self.wall),
                images / (time.process_time() - self.cpu))


def time_batches(dataset: tf.data.Dataset, warmup: int, batches: int) -> tuple[float, float]:
    """(images/s, images/CPU-s) over ``batches`` batches, after ``warmup`` untimed ones."""
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    rate = Rate()
    images = sum(int(next(iterator)["features"].shape[0]) for _ in range(batches))
    return rate.stop(images)


def time_full_pass(dataset: tf.data.Dataset) -> tuple[float, float, int]:
    """(images/s, images/CPU-s, real images) of one full pass, padding excluded."""
    rate = Rate()
    images = sum(int(batch["mask"].numpy().sum()) for batch in dataset)
    return (*rate.stop(images), images)


@contextlib.contextmanager
def mocked_cifar10(num_examples: int):
    """TFDS cifar10 mocked with ``num_examples`` random images per split, PNG-encoded once."""
    spec = importlib.util.spec_from_file_location("mock_tfds_data", REPO / "tests" / "datasets" / "mock_tfds_data.py")
    mock_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mock_module)  # The tests' TFDS mock, loaded from its file.
    mock_tfds = mock_module.mock_tfds

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(num_examples, 32, 32, 3), dtype=np.uint8)
    encoded = tf.constant([tf.io.encode_png(image).numpy() for image in images])

    def example(index):
        return {"image": tf.gather(encoded, index), "label": index % 10}

    sizes = {"train": num_examples, "test": num_examples}
    with tempfile.TemporaryDirectory() as metadata_dir, \
            mock_tfds(metadata_dir, {"cifar10": (sizes, example)}):
        yield


def wrn_16_4_images_per_second(steps: int) -> float:
    """A bare train_on_batch rate of WRN-16-4 at batch 128 (models helper's benchmark)."""
    from model_step_bench import images_per_second  # Beside this script, so on sys.path.
    return images_per_second(depth=16, width=4, batch=128, steps=steps, warmup=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", help="folder with prepared cifar10 (else mocked data)")
    parser.add_argument("--mock_examples", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--train_batches", type=int, default=400, help="timed batches")
    parser.add_argument("--warmup", type=int, default=20, help="untimed training batches")
    parser.add_argument("--wrn_steps", type=int, default=5, help="timed WRN-16-4 steps")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        if args.data_dir:
            source = f"prepared CIFAR-10 in {args.data_dir}"
        else:
            stack.enter_context(mocked_cifar10(args.mock_examples))
            source = f"MOCK data ({args.mock_examples} random PNG images per split)"
        train = ub.datasets.get("cifar10", "train", seed=0, data_dir=args.data_dir)
        test = ub.datasets.get("cifar10", "test", data_dir=args.data_dir)
        train_rate, train_cpu = time_batches(train.load(batch_size=args.batch), args.warmup,
                                             args.train_batches)
        first_pass, _, _ = time_full_pass(test.load(batch_size=args.batch))
        eval_rate, eval_cpu, eval_images = time_full_pass(test.load(batch_size=args.batch))
        cached = ub.datasets.get("cifar10", "test", data_dir=args.data_dir, cache=True).load(
            batch_size=args.batch)
        time_full_pass(cached)  # fills the cache
        cached_rate, _, _ = time_full_pass(cached)
    wrn_rate = wrn_16_4_images_per_second(args.wrn_steps)

    print(f"data: {source}; train {train.num_examples}, test {test.num_examples} examples")
    print(f"hardware: {os.cpu_count()} CPU cores visible (shared machine); "
          f"TF {tf.__version__}")
    print(f"train pipeline (decode, pad-crop-flip, normalise, batch {args.batch}): "
          f"{train_rate:,.0f} images/s over {args.train_batches} batches, "
          f"{train_cpu:,.0f} images/CPU-s "
          f"(target {TRAIN_TARGET:,}: {'PASS' if train_rate >= TRAIN_TARGET else 'FAIL'})")
    print(f"eval pipeline (decode, normalise, pad+mask, batch {args.batch}): "
          f"{eval_rate:,.0f} images/s over {eval_images} images (first pass {first_pass:,.0f}), "
          f"{eval_cpu:,.0f} images/CPU-s "
          f"(target {EVAL_TARGET:,}: {'PASS' if eval_rate >= EVAL_TARGET else 'FAIL'})")
    print(f"eval pipeline with cache=True, passes after the first: {cached_rate:,.0f} images/s")
    print(f"load average while running: {os.getloadavg()[0]:.1f} (2 cores)")
    print(f"WRN-16-4 train_on_batch, batch 128: {wrn_rate:,.1f} images/s")
    print(f"ratio train pipeline / WRN-16-4 step: {train_rate / wrn_rate:,.1f}x")


if __name__ == "__main__":
    main()
