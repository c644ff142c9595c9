"""MNIST, Fashion-MNIST and Fashion-MNIST-C (TFDS ``mnist``, ``fashion_mnist``,
``fashion_mnist_corrupted``): 28x28x1 images scaled to [0, 1] then normalised with the
training set's mean and standard deviation; no augmentation."""
from __future__ import annotations

from uncertainty_baselines.datasets.images import CorruptedImageDataset, ImageDataset


class MnistDataset(ImageDataset):
    """MNIST digits: 60,000 train / 10,000 test 28x28 grayscale images, 10 classes."""

    NAME = "mnist"
    TFDS_NAME = "mnist"
    NUM_CLASSES = 10
    IMAGE_SHAPE = (28, 28, 1)
    MEAN = (0.1307,)
    STD = (0.3081,)


class FashionMnistDataset(ImageDataset):
    """Fashion-MNIST: 60,000 train / 10,000 test 28x28 grayscale images, 10 classes."""

    NAME = "fashion_mnist"
    TFDS_NAME = "fashion_mnist"
    NUM_CLASSES = 10
    IMAGE_SHAPE = (28, 28, 1)
    MEAN = (0.2860,)
    STD = (0.3530,)


class FashionMnistCorruptedDataset(CorruptedImageDataset, FashionMnistDataset):
    """Fashion-MNIST test images under ``corruption_type`` at ``severity`` 1-5; TFDS has no
    such builder, so the data is the set ``datasets.corruptions`` generates locally."""

    NAME = "fashion_mnist_corrupted"
    TFDS_NAME = "fashion_mnist_corrupted"
