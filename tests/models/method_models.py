"""A method model written the way methods plug in: a registry entry of JSON-able kwargs
that hands a layer factory to the Wide ResNet (used by the factory and backend tests)."""
from collections.abc import Sequence

import keras

from uncertainty_baselines.models.wide_resnet import member_head, wide_resnet


def two_head_wide_resnet(input_shape: Sequence[int], depth: int, width_multiplier: int,
                         num_classes: int, seed: int = 0) -> keras.Model:
    """WRN-depth-k with two output heads: logits [B, 2, num_classes]."""
    return wide_resnet(input_shape, depth, width_multiplier, num_classes, seed=seed,
                       head=member_head(2))
