"""SVHN cropped digits (TFDS ``svhn_cropped``): 73,257 train / 26,032 test 32x32 RGB
images, 10 classes; per-channel normalisation, no augmentation (a flipped digit is not
the same digit). The 'extra' split is not exposed."""
from __future__ import annotations

from uncertainty_baselines.datasets.images import ImageDataset


class SvhnDataset(ImageDataset):
    """SVHN (cropped digits); as an OOD set for CIFAR see ``datasets.ood``."""

    NAME = "svhn_cropped"
    TFDS_NAME = "svhn_cropped"
    NUM_CLASSES = 10
    IMAGE_SHAPE = (32, 32, 3)
    MEAN = (0.4377, 0.4438, 0.4728)
    STD = (0.1980, 0.2010, 0.1970)
