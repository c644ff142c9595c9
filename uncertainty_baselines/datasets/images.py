"""Image classification datasets in TFDS format ({'image', 'label'}) and their preprocessing.

Images are read still encoded (``SkipDecoding``) and decoded after shuffling and sharding,
so shuffle buffers hold compressed bytes and each input pipeline decodes only its share.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import tensorflow as tf
import tensorflow_datasets as tfds

from uncertainty_baselines.datasets.base import Example, TfdsDataset

SEVERITIES = (1, 2, 3, 4, 5)


def decode_image(image: tf.Tensor, channels: int) -> tf.Tensor:
    """uint8 HxWxC image from encoded bytes (PNG/JPEG/...); decoded images pass through."""
    if image.dtype == tf.string:
        return tf.io.decode_image(image, channels=channels, expand_animations=False)
    return image


def normalize(image: tf.Tensor, mean: Sequence[float], std: Sequence[float]) -> tf.Tensor:
    """float32 (image / 255 - mean) / std, per channel."""
    image = tf.cast(image, tf.float32) / 255.0
    return (image - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)


def pad_crop_flip(image: tf.Tensor, seed: tf.Tensor, pad: int = 4) -> tf.Tensor:
    """Zero-pad by ``pad`` pixels, crop back to the original size at a random offset and
    flip horizontally with probability 1/2 (the CIFAR augmentation); stateless in seed."""
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    shape = tf.shape(image)
    padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
    cropped = tf.image.stateless_random_crop(padded, shape, seed=crop_seed)
    return tf.image.stateless_random_flip_left_right(cropped, seed=flip_seed)


def convert_image(image: tf.Tensor, shape: Sequence[int | None]) -> tf.Tensor:
    """uint8 image converted to ``shape`` (H, W, C): channels first (RGB<->grayscale), then
    antialiased bilinear resize (skipped when H, W are None: the target takes any size).
    Used to feed one dataset's images through another's preprocessing."""
    height, width, channels = shape
    if image.shape[-1] == 3 and channels == 1:
        image = tf.image.rgb_to_grayscale(image)
    elif image.shape[-1] == 1 and channels == 3:
        image = tf.image.grayscale_to_rgb(image)
    elif image.shape[-1] != channels:
        raise ValueError(f"cannot convert images with {image.shape[-1]} channels to {channels}")
    if height is not None and tuple(image.shape[:2]) != (height, width):
        image = tf.image.resize(image, (height, width), antialias=True)
        image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
    return image


class ImageDataset(TfdsDataset):
    """A TFDS image classification dataset; subclasses set the class attributes.

    Features are ``preprocess_image(image, seed)``; labels the int32 class. Subclasses
    with ``CROP_PADDING`` set train on ``pad_crop_flip``; others change the augmentation by
    overriding ``_augment``, or the whole image pipeline by overriding ``preprocess_image``.
    """

    NAME: ClassVar[str]
    TFDS_NAME: ClassVar[str]
    NUM_CLASSES: ClassVar[int]
    IMAGE_SHAPE: ClassVar[tuple[int | None, int | None, int]]  # raw decoded image
    RAW_SPLITS: ClassVar[tuple[str, ...]] = ("train", "test")
    TFDS_SPLIT_NAMES: ClassVar[Mapping[str, str]] = {}  # ours -> TFDS's, where they differ
    MEAN: ClassVar[tuple[float, ...]]
    STD: ClassVar[tuple[float, ...]]
    # Default zero padding (pixels) of the training pad_crop_flip; None: no such augmentation.
    CROP_PADDING: ClassVar[int | None] = None

    def __init__(self, split: str = "train", *, decoders: Mapping[str, Any] | None = None,
                 crop_padding: int | None = None, **kwargs: Any):
        """crop_padding: zero padding of the training pad_crop_flip (default CROP_PADDING; only
        datasets with that augmentation take it). See ``TfdsDataset`` and ``BaseDataset`` for
        the other arguments."""
        if crop_padding is not None and self.CROP_PADDING is None:
            raise ValueError(f"{self.NAME} has no pad-and-crop augmentation; crop_padding is for "
                             "datasets that have one (cifar10, cifar100)")
        if crop_padding is not None and crop_padding < 0:
            raise ValueError(f"crop_padding must be >= 0, got {crop_padding}")
        self.crop_padding = self.CROP_PADDING if crop_padding is None else crop_padding
        super().__init__(name=self.NAME, tfds_name=self.TFDS_NAME, num_classes=self.NUM_CLASSES,
                         split=split, raw_splits=self.RAW_SPLITS,
                         tfds_split_names=self.TFDS_SPLIT_NAMES,
                         decoders=decoders or {"image": tfds.decode.SkipDecoding()}, **kwargs)

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Shape of one preprocessed image (what models take as input)."""
        return tuple(self.IMAGE_SHAPE)

    def _augment(self, image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """Training augmentation of a uint8 image: pad_crop_flip when the dataset has it, else none."""
        if self.crop_padding is None:
            return image
        return pad_crop_flip(image, seed, pad=self.crop_padding)

    def preprocess_image(self, image: tf.Tensor, seed: tf.Tensor | None) -> tf.Tensor:
        """uint8 image -> float32 model input; augmented when a seed is given."""
        if seed is not None:
            image = self._augment(image, seed)
        image = normalize(image, self.MEAN, self.STD)
        return tf.ensure_shape(image, self.output_shape)

    def _preprocess(self, example: Example, seed: tf.Tensor | None) -> Example:
        image = decode_image(example["image"], self.IMAGE_SHAPE[-1])
        return {"features": self.preprocess_image(image, seed),
                "labels": tf.cast(example["label"], tf.int32)}


class CorruptedImageDataset(ImageDataset):
    """``<base>_corrupted``: a base dataset's test images under one corruption and severity.

    Mix in before the base dataset class (``class X(CorruptedImageDataset, Base)``) and set
    ``NAME`` and ``TFDS_NAME``; the base class gives the (evaluation) preprocessing. The
    TFDS config is ``<corruption_type>_<severity>``, the only split 'test'.
    """

    RAW_SPLITS: ClassVar[tuple[str, ...]] = ("test",)

    def __init__(self, split: str = "test", *, corruption_type: str, severity: int,
                 **kwargs: Any):
        """corruption_type e.g. 'gaussian_noise'; severity in 1..5."""
        if severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
        types = self.corruption_types()
        if types and corruption_type not in types:
            raise ValueError(f"{self.NAME}: unknown corruption_type {corruption_type!r}; "
                             f"valid types: {', '.join(types)}")
        self.corruption_type = corruption_type
        self.severity = severity
        super().__init__(split, config=f"{corruption_type}_{severity}", **kwargs)

    @classmethod
    def corruption_types(cls) -> tuple[str, ...]:
        """Corruption types of the TFDS builder's configs; () when TFDS has no such builder
        (locally generated sets), in which case any name whose data is prepared works."""
        try:
            configs = tfds.builder_cls(cls.TFDS_NAME).BUILDER_CONFIGS
        except tfds.core.registered.DatasetNotFoundError:
            return ()
        return tuple(dict.fromkeys(c.name.rsplit("_", 1)[0] for c in configs))
