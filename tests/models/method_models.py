"""A method model written the way methods plug in: a registry entry of JSON-able kwargs
that hands a layer factory to the Wide ResNet (used by the factory and backend tests)."""
from collections.abc import Sequence

import keras

from uncertainty_baselines.models.common import HeadFactory, Init, TensorFn, dense_head
from uncertainty_baselines.models.wide_resnet import wide_resnet


def member_head(num_members: int) -> HeadFactory:
    """A head giving `num_members` sets of logits, [B, num_members, K], from one Dense."""
    def head(num_classes: int, kernel_l2: float, bias_l2: float, init: Init) -> TensorFn:
        dense = dense_head(num_members * num_classes, kernel_l2, bias_l2, init)
        reshape = keras.layers.Reshape((num_members, num_classes))
        return lambda x: reshape(dense(x))
    return head


def two_head_wide_resnet(input_shape: Sequence[int], depth: int, width_multiplier: int,
                         num_classes: int, seed: int = 0) -> keras.Model:
    """WRN-depth-k with two output heads: logits [B, 2, num_classes]."""
    return wide_resnet(input_shape, depth, width_multiplier, num_classes, seed=seed,
                       head=member_head(2))
