"""ResNet-50 (He et al. 2016), v1.5 (stride on the 3x3 conv), the ImageNet reference model.

Bottleneck blocks [3, 4, 6, 3] with 64/128/256/512 x4 filters, no conv biases, BatchNorm
epsilon 1e-5 and momentum 0.9, He-normal conv init, global average pooling and a dense
layer producing logits: 25,557,032 parameters for 1000 classes. The dense kernel starts
from N(0, 0.01^2), as in the reference, so the initial loss is about log(K) although the
residual stream grows through the 16 blocks (with He-normal it starts near 2.6 log K).
The last BatchNorm of each block starts at gamma = 1 (not the zero-init variant, under
which the residual branches receive no gradient on the first step). Keras layers only,
so it runs on TF, JAX and torch. As in the Wide ResNet, a method swaps the `conv` and
`head` factories (see models/common.py) and the `branch` run inside each bottleneck (after
the 3x3 conv's BN-ReLU); the method models below reuse the Wide ResNet's factories.
"""
from collections.abc import Sequence

import keras

from uncertainty_baselines.layers.batchensemble import REFERENCE_RANDOM_SIGN_INIT
from uncertainty_baselines.models.common import (
    ConvFactory, HeadFactory, Init, TensorFn, batch_norm, conv2d, initializer_stream, l2_regularizer)
from uncertainty_baselines.models.wide_resnet import (
    batchensemble_factories, identity, mc_dropout_branch, sngp_factories, tiled_members)

STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))  # (filters, blocks, stride)
EXPANSION = 4


def small_normal_head(num_classes: int, kernel_l2: float, bias_l2: float,
                      init: Init) -> keras.layers.Dense:
    """The default ResNet-50 head: a Dense layer whose kernel starts from N(0, 0.01^2)."""
    return keras.layers.Dense(
        num_classes, kernel_initializer=init(keras.initializers.RandomNormal, stddev=0.01),
        kernel_regularizer=l2_regularizer(kernel_l2), bias_regularizer=l2_regularizer(bias_l2))


def resnet50(input_shape: Sequence[int] = (224, 224, 3), num_classes: int = 1000,
             l2: float = 0.0, seed: int = 0, *, conv: ConvFactory = conv2d,
             head: HeadFactory = small_normal_head, branch: TensorFn = identity) -> keras.Model:
    """Builds ResNet-50 mapping images (H, W, C), channels last, to `num_classes` logits.

    `l2` is the L2 coefficient (a loss term) on every weight; the initial weights are a
    deterministic function of `seed`. `conv` builds every convolution (in graph order) and
    `head` the output layer on the pooled features, `branch` runs once per bottleneck on
    its 3x3 conv's activations (default: nothing added).
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (height, width, channels), got {input_shape}")
    init = initializer_stream(seed)

    def conv_l2(filters: int, kernel_size: int, strides: int, padding: str = "same"):
        return conv(filters, kernel_size, strides, l2, init, padding=padding)

    def bn_relu(x):
        return keras.layers.Activation("relu")(batch_norm(l2)(x))

    def bottleneck(x, filters: int, strides: int):
        y = bn_relu(conv_l2(filters, 1, 1)(x))
        y = branch(bn_relu(conv_l2(filters, 3, strides)(y)))
        y = batch_norm(l2)(conv_l2(filters * EXPANSION, 1, 1)(y))
        shortcut = x
        if strides != 1 or x.shape[-1] != filters * EXPANSION:
            shortcut = batch_norm(l2)(conv_l2(filters * EXPANSION, 1, strides)(x))
        # [main, shortcut] as the reference: the weighted layers then list in its order.
        return keras.layers.Activation("relu")(keras.layers.Add()([y, shortcut]))

    inputs = keras.Input(shape=tuple(input_shape))
    x = keras.layers.ZeroPadding2D(3)(inputs)
    x = bn_relu(conv_l2(64, 7, 2, padding="valid")(x))
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same")(x)  # The reference's (asymmetric) padding.
    for filters, num_blocks, strides in STAGES:
        for block in range(num_blocks):
            x = bottleneck(x, filters, strides if block == 0 else 1)
    x = keras.layers.GlobalAveragePooling2D()(x)
    logits = head(num_classes, l2, l2, init)(x)
    return keras.Model(inputs, logits, name="resnet50")


def resnet50_mc_dropout(input_shape: Sequence[int] = (224, 224, 3), num_classes: int = 1000, l2: float = 0.0,
                        seed: int = 0, dropout_rate: float = 0.1, filterwise: bool = False) -> keras.Model:
    """ResNet-50 with MC dropout (active at test time) in every bottleneck, after its 3x3
    conv; with rate 0 it computes exactly the plain ResNet-50 of the same seed."""
    return resnet50(input_shape, num_classes, l2, seed, branch=mc_dropout_branch(dropout_rate, seed, filterwise))


def resnet50_batchensemble(input_shape: Sequence[int] = (224, 224, 3), num_classes: int = 1000,
                           l2: float = 0.0, seed: int = 0, ensemble_size: int = 4,
                           random_sign_init: float = REFERENCE_RANDOM_SIGN_INIT) -> keras.Model:
    """BatchEnsemble ResNet-50 (Wen et al. 2020): images [B, H, W, C] in, logits [B, M, K]
    out; every conv and the head are BatchEnsemble layers, batch norm shared, the batch
    tiled M times inside (as `wide_resnet_batchensemble`, fast weights initialised by
    ``ub.layers.sign_initializer(random_sign_init)``)."""
    if ensemble_size < 1:
        raise ValueError(f"ensemble_size must be >= 1, got {ensemble_size}")
    conv, head = batchensemble_factories(ensemble_size, seed, random_sign_init)
    return tiled_members(resnet50(input_shape, num_classes, l2, seed, conv=conv, head=head), ensemble_size,
                         "batchensemble")


def resnet50_sngp(input_shape: Sequence[int] = (224, 224, 3), num_classes: int = 1000, l2: float = 0.0,
                  seed: int = 0, *, spec_norm_bound: float = 6.0, spec_norm_iterations: int = 1,
                  num_inducing: int = 1024, gp_length_scale: float = 1.0, gp_input_dim: int | None = 128,
                  gp_ridge_penalty: float = 1.0, gp_covariance_momentum: float = -1.0,
                  gp_mean_field_factor: float = 1.0, dropout_rate: float = 0.0,
                  scale_features: bool = True) -> keras.Model:
    """SNGP ResNet-50 (Liu et al. 2020): every conv spectrally normalised, optional
    filter-wise dropout in the bottlenecks in training, and the random-feature GP output
    layer of `wide_resnet_sngp` (see there for the arguments)."""
    conv, branch, head = sngp_factories(
        seed, spec_norm_bound, spec_norm_iterations, dropout_rate, num_inducing=num_inducing,
        length_scale=gp_length_scale, scale_features=scale_features, input_projection_dim=gp_input_dim,
        ridge_penalty=gp_ridge_penalty, covariance_momentum=gp_covariance_momentum,
        mean_field_factor=gp_mean_field_factor)
    return resnet50(input_shape, num_classes, l2, seed, conv=conv, head=head, branch=branch)
