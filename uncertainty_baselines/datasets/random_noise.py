"""Random images, a trivial out-of-distribution set: i.i.d. standard Gaussian or
Rademacher (+-1) pixels, generated already in model-input space (normalised images have
roughly zero mean and unit variance), so no preprocessing is applied.

Example ``i`` is a stateless function of ``(seed, i)``: the same seed gives the same
images. There is no class: labels are -1 and ``num_classes`` is 0.
"""
from __future__ import annotations

import abc

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import tensorflow as tf

from uncertainty_baselines.datasets.base import BaseDataset, Example

NO_LABEL = -1


class _RandomImageDataset(BaseDataset):
    NAME: ClassVar[str]

    def __init__(self, split: str = "test", *, num_examples: int = 1000,
                 image_shape: Sequence[int] = (32, 32, 3), **kwargs: Any):
        """num_examples: size of the (only) 'test' split; image_shape: (H, W, C)."""
        if num_examples < 1:
            raise ValueError(f"num_examples must be positive, got {num_examples}")
        if len(image_shape) != 3 or min(image_shape) < 1:
            raise ValueError(f"image_shape must be 3 positive ints (H, W, C), got {image_shape}")
        self._size = num_examples
        self.image_shape = tuple(int(d) for d in image_shape)
        super().__init__(name=self.NAME, num_classes=0, split=split, raw_splits=("test",),
                         **kwargs)

    def _split_sizes(self) -> Mapping[str, int]:
        return {"test": self._size}

    def _read(self, split: str, start: int, stop: int) -> tf.data.Dataset:
        return tf.data.Dataset.range(start, stop).map(lambda index: {"index": index})

    @abc.abstractmethod
    def _sample(self, seed: tf.Tensor) -> tf.Tensor:
        """One float32 image of ``image_shape`` drawn with the stateless ``seed``."""

    def _preprocess(self, example: Example, seed: tf.Tensor | None) -> Example:
        del seed  # The image is a function of (dataset seed, index) only.
        image_seed = tf.stack([tf.constant(self.seed, tf.int64), example["index"]])
        return {"features": self._sample(image_seed), "labels": tf.constant(NO_LABEL, tf.int32)}


class RandomGaussianDataset(_RandomImageDataset):
    """Images with i.i.d. N(0, 1) pixels."""

    NAME = "random_gaussian"

    def _sample(self, seed: tf.Tensor) -> tf.Tensor:
        return tf.random.stateless_normal(self.image_shape, seed=seed)


class RandomRademacherDataset(_RandomImageDataset):
    """Images with i.i.d. pixels -1 or +1, each with probability 1/2."""

    NAME = "random_rademacher"

    def _sample(self, seed: tf.Tensor) -> tf.Tensor:
        bits = tf.random.stateless_uniform(self.image_shape, seed=seed, minval=0, maxval=2,
                                           dtype=tf.int32)
        return tf.cast(2 * bits - 1, tf.float32)
