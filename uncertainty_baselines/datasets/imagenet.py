"""ImageNet (ILSVRC-2012) and its robustness test sets, 1,000 classes, 224x224x3 inputs.

Our 'test' split is ImageNet's official validation set (TFDS 'validation'); 'validation'
is carved off train with ``validation_percent``. Two preprocessings:
  * 'resnet' (default): train = random-resized crop (area 8-100 %, aspect 3/4-4/3) to
    224 + horizontal flip; eval = resize the shorter side to 256 + central 224 crop;
    normalised with the ImageNet mean / std.
  * 'inception': train = random-resized crop (area 5-100 %) to 224 + flip; eval = central
    87.5 % crop resized to 224; scaled to [-1, 1].
The robustness sets (ImageNet-A, -R, -V2 and ImageNet-C) share the labels and the eval
preprocessing; ImageNet-C images are already 224x224 central crops and are only scaled.
``image_size`` (default 224) changes the crop size (eval: shorter side resized to
image_size x 256 / 224 first; ImageNet-C resized): small sizes for tests and quick runs.
"""
from __future__ import annotations

from typing import Any, ClassVar

import tensorflow as tf

from uncertainty_baselines.datasets.images import (CorruptedImageDataset, ImageDataset,
                                                   normalize)

IMAGE_SIZE = 224
RESIZE_SIZE = 256
INCEPTION_CENTRAL_FRACTION = 0.875
AREA_RANGE = {"resnet": (0.08, 1.0), "inception": (0.05, 1.0)}
PREPROCESSINGS = tuple(AREA_RANGE)


def random_resized_crop(image: tf.Tensor, seed: tf.Tensor,
                        area_range: tuple[float, float], size: int = IMAGE_SIZE) -> tf.Tensor:
    """Crop a random box (area fraction in area_range, aspect 3/4-4/3) and resize it to
    size x size (float32, bilinear); the whole image when no box is found in 10 attempts."""
    begin, size_, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image), bounding_boxes=tf.zeros([1, 0, 4]), seed=seed,
        min_object_covered=0.1, aspect_ratio_range=(3 / 4, 4 / 3), area_range=area_range,
        max_attempts=10, use_image_if_no_bounding_boxes=True)
    crop = tf.slice(image, begin, size_)
    return tf.image.resize(crop, (size, size))


def resize_and_center_crop(image: tf.Tensor, size: int = IMAGE_SIZE) -> tf.Tensor:
    """Resize the shorter side to 256 (size x 256 / 224; aspect kept) and take the central
    224x224 (size x size; float32)."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = round(size * RESIZE_SIZE / IMAGE_SIZE) / tf.reduce_min(shape)
    new_shape = tf.cast(tf.round(shape * scale), tf.int32)
    resized = tf.image.resize(image, new_shape)
    top = (new_shape[0] - size) // 2
    left = (new_shape[1] - size) // 2
    return resized[top:top + size, left:left + size]


def central_crop_and_resize(image: tf.Tensor, size: int = IMAGE_SIZE) -> tf.Tensor:
    """The central 87.5 % of each side, resized to size x size (float32; Inception eval)."""
    crop = tf.image.central_crop(image, INCEPTION_CENTRAL_FRACTION)
    return tf.image.resize(crop, (size, size))


class ImageNetDataset(ImageDataset):
    """ImageNet-2012: 1,281,167 train / 50,000 test (official validation) images."""

    NAME = "imagenet2012"
    TFDS_NAME = "imagenet2012"
    NUM_CLASSES = 1000
    IMAGE_SHAPE = (None, None, 3)
    RAW_SPLITS: ClassVar[tuple[str, ...]] = ("train", "test")
    TFDS_SPLIT_NAMES = {"test": "validation"}
    MEAN = (0.485, 0.456, 0.406)
    STD = (0.229, 0.224, 0.225)

    def __init__(self, split: str = "train", *, preprocessing: str = "resnet", image_size: int = IMAGE_SIZE,
                 **kwargs: Any):
        """preprocessing: 'resnet' or 'inception' (see the module docstring); image_size:
        the side of the square the model sees."""
        if preprocessing not in PREPROCESSINGS:
            raise ValueError(f"preprocessing must be one of {PREPROCESSINGS}, "
                             f"got {preprocessing!r}")
        if image_size < 8:
            raise ValueError(f"image_size must be >= 8, got {image_size}")
        self.preprocessing = preprocessing
        self.image_size = int(image_size)
        super().__init__(split, **kwargs)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (self.image_size, self.image_size, 3)

    def _scale(self, image: tf.Tensor) -> tf.Tensor:
        """Pixel values [0, 255] -> normalised ('resnet') or [-1, 1] ('inception')."""
        if self.preprocessing == "resnet":
            return normalize(image, self.MEAN, self.STD)
        return tf.cast(image, tf.float32) / 127.5 - 1.0

    def _crop(self, image: tf.Tensor, seed: tf.Tensor | None) -> tf.Tensor:
        """The 224x224 region the model sees (random on training, central on eval)."""
        if seed is not None:
            crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
            crop = random_resized_crop(image, crop_seed, AREA_RANGE[self.preprocessing], self.image_size)
            return tf.image.stateless_random_flip_left_right(crop, seed=flip_seed)
        if self.preprocessing == "resnet":
            return resize_and_center_crop(image, self.image_size)
        return central_crop_and_resize(image, self.image_size)

    def preprocess_image(self, image: tf.Tensor, seed: tf.Tensor | None) -> tf.Tensor:
        return tf.ensure_shape(self._scale(self._crop(image, seed)), self.output_shape)


class _ImageNetTestSet(ImageNetDataset):
    RAW_SPLITS: ClassVar[tuple[str, ...]] = ("test",)
    TFDS_SPLIT_NAMES: ClassVar[dict[str, str]] = {}

    def __init__(self, split: str = "test", **kwargs: Any):
        super().__init__(split, **kwargs)


class ImageNetADataset(_ImageNetTestSet):
    """ImageNet-A: 7,500 natural adversarial examples (200 of the 1,000 classes)."""

    NAME = "imagenet_a"
    TFDS_NAME = "imagenet_a"


class ImageNetRDataset(_ImageNetTestSet):
    """ImageNet-R: 30,000 renditions (art, cartoons, ...) of 200 of the 1,000 classes."""

    NAME = "imagenet_r"
    TFDS_NAME = "imagenet_r"


class ImageNetV2Dataset(_ImageNetTestSet):
    """ImageNet-V2 (TFDS default config, matched-frequency): 10,000 new test images."""

    NAME = "imagenet_v2"
    TFDS_NAME = "imagenet_v2"


class ImageNetCorruptedDataset(CorruptedImageDataset, ImageNetDataset):
    """ImageNet-C: the 50,000 validation images (already 224x224 central crops) under
    ``corruption_type`` at ``severity`` 1-5."""

    NAME = "imagenet2012_corrupted"
    TFDS_NAME = "imagenet2012_corrupted"
    TFDS_SPLIT_NAMES = {"test": "validation"}

    def _crop(self, image: tf.Tensor, seed: tf.Tensor | None) -> tf.Tensor:
        del seed  # Evaluation only.
        if self.image_size != IMAGE_SIZE:
            return tf.image.resize(image, (self.image_size, self.image_size))
        return tf.cast(image, tf.float32)
