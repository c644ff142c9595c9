"""`ub.datasets` as NumPy batches for JAX (or any framework's) training loops.

Batches are dicts of NumPy arrays of the GLOBAL batch (`features` [B, H, W, C] float32,
`labels` [B] int32, `id` [B] int64, and on evaluation splits `mask` [B] float32, 0 on the
padding rows of the last batch). The training stream is the dataset's deterministic stream
(epoch e shuffled with a seed of (seed, e), each example augmented with a seed of (seed, e,
id)), so it does not depend on the number of devices, and `start_step` resumes it exactly.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterator

import numpy as np

from uncertainty_baselines import datasets as ub_datasets
from uncertainty_baselines.datasets import ood as ub_ood

Batch = dict[str, np.ndarray]


def train_subset(name: str, num_examples: int | None, **kwargs: Any) -> ub_datasets.BaseDataset:
    """The training split, or only its first `num_examples` examples (small budgets, tests):
    the dataset's own train/validation carve-out, sized so exactly `num_examples` remain."""
    dataset = ub_datasets.get(name, "train", **kwargs)
    total = dataset.num_examples
    if not num_examples or num_examples == total:
        return dataset
    if not 1 <= num_examples < total:
        raise ValueError(f"train_examples must be in [1, {total}] for {name}, got {num_examples}")
    # +0.5 keeps int(total * percent) == total - num_examples despite float rounding.
    subset = ub_datasets.get(name, "train", validation_percent=(total - num_examples + 0.5) / total, **kwargs)
    assert subset.num_examples == num_examples, (subset.num_examples, num_examples)
    return subset


def train_batches(dataset: ub_datasets.BaseDataset, batch_size: int, start_step: int = 0) -> Iterator[Batch]:
    """The endless training stream of global batches from step `start_step` on (the
    skipped batches are read by tf.data, never converted or trained on)."""
    stream = dataset.load(batch_size=batch_size)
    if start_step:
        stream = stream.skip(start_step)
    return stream.as_numpy_iterator()


def eval_batches(dataset: ub_datasets.BaseDataset, batch_size: int) -> Iterator[Batch]:
    """Every example of an evaluation split once, in order, in global batches of
    `batch_size`; the last batch is padded (`mask` 0, `id` -1), never dropped."""
    return dataset.load(batch_size=batch_size).as_numpy_iterator()


@dataclasses.dataclass
class ImageData:
    """The datasets of a run (not yet read): the training split, the clean test split, the
    OOD sets (their OOD examples only; the test set is their in-distribution half) and the
    corrupted test sets."""
    train: ub_datasets.BaseDataset
    test: ub_datasets.BaseDataset
    ood: dict[str, ub_datasets.BaseDataset]
    corrupted: dict[tuple[str, int], ub_datasets.BaseDataset]
    num_classes: int
    image_shape: tuple[int, ...]

    @property
    def num_train_examples(self) -> int:
        return self.train.num_examples


def load_image_data(*, dataset: str, data_dir: str | None, seed: int, train_examples: int = 0,
                    ood_datasets: tuple[str, ...] = (), corruption_types: tuple[str, ...] = (),
                    severities: tuple[int, ...] = (), cache_eval: bool = True) -> ImageData:
    """The datasets a config names; a missing dataset raises `ub.datasets.DataNotFoundError`
    with its preparation command. Evaluation sets are cached after their first pass when
    `cache_eval` (decoded once per run)."""
    on_disk = {"data_dir": data_dir}
    train = train_subset(dataset, train_examples, seed=seed, **on_disk)
    test = ub_datasets.get(dataset, "test", cache=cache_eval, **on_disk)
    # Seeded: sets generated on the fly (random images) must be the same on every start of a run.
    ood = {name: ub_ood.get_ood(dataset, name, data_dir=data_dir, include_in_distribution=False,
                                ood_kwargs={"seed": seed}, cache=cache_eval)
           for name in ood_datasets}
    corrupted = {}
    for kind in corruption_types:
        for severity in severities:
            corrupted[(kind, int(severity))] = ub_datasets.get(
                f"{dataset}_corrupted", "test", corruption_type=kind, severity=int(severity), **on_disk)
    return ImageData(train=train, test=test, ood=ood, corrupted=corrupted, num_classes=test.num_classes,
                     image_shape=tuple(test.output_shape))
