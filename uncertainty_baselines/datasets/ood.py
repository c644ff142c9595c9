"""Out-of-distribution evaluation sets: an in-distribution test split followed by an OOD set.

Every example is preprocessed the in-distribution way, so a model sees OOD inputs exactly
as it would see in-distribution ones: OOD images are decoded, converted to the
in-distribution image shape (RGB <-> grayscale, resize; e.g. CIFAR-10 for a Fashion-MNIST
model) and then go through the in-distribution dataset's evaluation preprocessing. Sets
generated directly in model-input space (random images) keep their own features, which
must have the in-distribution input shape.

Elements carry ``is_in_distribution`` (int32: 1 in-distribution, 0 OOD; 0 on padding,
where mask is 0 too). OOD examples have label ``OOD_LABEL`` (-1, no class). Ids number the
in-distribution examples first (0..N_in-1), then the OOD ones (N_in..N_in+N_ood-1). With
``include_in_distribution=False`` a set holds only its OOD examples (ids 0..N_ood-1): the
training loop's evaluation, which has predicted the clean test set already, loads that.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tensorflow as tf

from uncertainty_baselines.datasets import get, get_class
from uncertainty_baselines.datasets.base import BaseDataset, Example, TfdsDataset, parallel_calls
from uncertainty_baselines.datasets.images import ImageDataset, convert_image, decode_image

OOD_LABEL = -1


class OodDataset(BaseDataset):
    """The evaluation split ``in_distribution`` + ``out_of_distribution`` (see the module doc)."""

    def __init__(self, in_distribution: ImageDataset, out_of_distribution: BaseDataset, *,
                 include_in_distribution: bool = True, **kwargs: Any):
        """`include_in_distribution=False`: the OOD examples alone (see the module doc).
        kwargs: BaseDataset evaluation arguments (mask_and_pad, drop_remainder, cache).

        Raises:
          ValueError: either dataset is a training split, or the in-distribution set is not
            an image dataset.
        """
        if not isinstance(in_distribution, ImageDataset):
            raise ValueError("the in-distribution dataset must be an image dataset, got "
                             f"{type(in_distribution).__name__}")
        for role, dataset in (("in-distribution", in_distribution),
                              ("out-of-distribution", out_of_distribution)):
            if dataset.is_training:
                raise ValueError(f"the {role} dataset {dataset.name} must be an evaluation "
                                 f"split (is_training=False), got split {dataset.split!r}")
        self.in_distribution = in_distribution
        self.out_of_distribution = out_of_distribution
        self.include_in_distribution = include_in_distribution
        super().__init__(name=f"{in_distribution.name}_vs_{out_of_distribution.name}",
                         num_classes=in_distribution.num_classes, split="test",
                         raw_splits=("test",), is_training=False, **kwargs)

    def _split_sizes(self) -> Mapping[str, int]:
        num_in = self.in_distribution.num_examples if self.include_in_distribution else 0
        return {"test": num_in + self.out_of_distribution.num_examples}

    def _read(self, split: str, start: int, stop: int) -> tf.data.Dataset:
        examples = _raw(self.out_of_distribution).map(self._ood_example, num_parallel_calls=parallel_calls())
        if self.include_in_distribution:
            examples = _raw(self.in_distribution).map(
                self._in_distribution_example, num_parallel_calls=parallel_calls()).concatenate(examples)
        return examples.skip(start).take(stop - start)

    def _in_distribution_example(self, example: Example) -> Example:
        out = self.in_distribution._preprocess(example, None)
        return {"features": out["features"], "labels": out["labels"],
                "is_in_distribution": tf.constant(1, tf.int32)}

    def _ood_example(self, example: Example) -> Example:
        ood, target = self.out_of_distribution, self.in_distribution
        if isinstance(ood, ImageDataset):
            image = decode_image(example["image"], ood.IMAGE_SHAPE[-1])
            features = target.preprocess_image(convert_image(image, target.IMAGE_SHAPE), None)
        else:
            features = ood._preprocess(example, None)["features"]
            if tuple(features.shape) != target.output_shape:
                raise ValueError(f"{ood.name} features have shape {tuple(features.shape)}, "
                                 f"{target.name} inputs {target.output_shape}")
        return {"features": features, "labels": tf.constant(OOD_LABEL, tf.int32),
                "is_in_distribution": tf.constant(0, tf.int32)}

    def _preprocess(self, example: Example, seed: tf.Tensor | None) -> Example:
        del seed  # Evaluation only; examples were preprocessed in _read.
        return example


def _raw(dataset: BaseDataset) -> tf.data.Dataset:
    """The raw examples of a dataset's selected split, in order."""
    return dataset._read(*dataset._range())


def get_ood(in_distribution: str, out_of_distribution: str, *, data_dir: str | None = None,
            ood_kwargs: Mapping[str, Any] | None = None, **kwargs: Any) -> OodDataset:
    """The test split of registered dataset ``in_distribution`` + that of
    ``out_of_distribution`` (constructed with ``ood_kwargs``, e.g. ``num_examples`` for random
    images); ``data_dir`` goes to the datasets stored on disk, kwargs to ``OodDataset``."""
    def make(name: str, extra: Mapping[str, Any]) -> BaseDataset:
        if issubclass(get_class(name), TfdsDataset):
            extra = {"data_dir": data_dir, **extra}
        return get(name, "test", **extra)

    return OodDataset(make(in_distribution, {}), make(out_of_distribution, ood_kwargs or {}),
                      **kwargs)
