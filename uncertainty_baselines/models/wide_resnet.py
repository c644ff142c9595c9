"""Wide ResNet (Zagoruyko and Komodakis 2016) with pre-activation blocks, as in the reference.

WRN-d-k: depth d = 6n + 4 convolutions (n blocks per group, three groups of 16k, 32k, 64k
filters at strides 1, 2, 2), BatchNorm epsilon 1e-5 and momentum 0.9, He-normal init,
no conv biases, global average pooling and a dense layer producing logits. The shortcut
takes the block's raw input (identity, or a 1x1 conv when the shape changes), as the
reference does; `shortcut_input="activated"` feeds the 1x1 conv the block's first BN-ReLU
instead, as the WRN paper's own code. Written against Keras layers only, so it runs on TF,
JAX and torch.

A method changes the network through layer factories rather than flags: `conv` builds
every convolution, `head` the output layer, and `branch` runs inside each residual branch
between its two convolutions (after the second BN-ReLU, where the WRN paper puts dropout).
The defaults build the plain WRN.
"""
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import numpy as np

from uncertainty_baselines.layers import (Conv2DBatchEnsemble, Conv2DFlipout, Conv2DRank1,
                                          DenseBatchEnsemble, DenseFlipout, DenseRank1,
                                          HeteroscedasticSoftmax, MCDropout, MeanFieldGaussianProcess,
                                          SpectralNormConv2D)
from uncertainty_baselines.layers.batchensemble import REFERENCE_RANDOM_SIGN_INIT
from uncertainty_baselines.layers.rank1 import REFERENCE_INIT_STDDEV
from uncertainty_baselines.models.common import (
    ConvFactory, HeadFactory, Init, TensorFn, batch_norm, conv2d, dense_head,
    initializer_stream, l2_regularizer)

# The groups whose L2 coefficient can be set separately (reference hyperparameter names).
L2_GROUPS = ("input_conv", "group_1_conv", "group_2_conv", "group_3_conv", "bn",
             "dense_kernel", "dense_bias")


def l2_coefficients(l2: float, overrides: Mapping[str, float] | None = None) -> dict[str, float]:
    """The L2 coefficient of every group in `L2_GROUPS`: `l2`, unless `overrides` sets it."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(L2_GROUPS))
    if unknown:
        raise ValueError(f"unknown L2 group(s) {unknown}; valid groups: {list(L2_GROUPS)}")
    return {group: float(overrides.get(group, l2)) for group in L2_GROUPS}


def identity(x: keras.KerasTensor) -> keras.KerasTensor:
    """The default `branch`: leaves the residual branch unchanged (adds no layer)."""
    return x


SHORTCUT_INPUTS = ("raw", "activated")


def _block(x, filters: int, strides: int, conv_l2: float, bn_l2: float, init: Init,
           conv: ConvFactory, branch: TensorFn, shortcut_input: str):
    """Pre-activation basic block: BN-ReLU-conv3x3-BN-ReLU-branch-conv3x3 plus the shortcut;
    a 1x1 shortcut conv reads the block's raw input or its first BN-ReLU (`shortcut_input`)."""
    activated = keras.layers.Activation("relu")(batch_norm(bn_l2)(x))
    y = conv(filters, 3, strides, conv_l2, init)(activated)
    y = branch(keras.layers.Activation("relu")(batch_norm(bn_l2)(y)))
    y = conv(filters, 3, 1, conv_l2, init)(y)
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = conv(filters, 1, strides, conv_l2, init)(activated if shortcut_input == "activated" else x)
    return keras.layers.Add()([shortcut, y])


def wide_resnet(input_shape: Sequence[int], depth: int, width_multiplier: int,
                num_classes: int, l2: float = 0.0, seed: int = 0,
                l2_overrides: Mapping[str, float] | None = None, initializer: str = "he_normal", *,
                shortcut_input: str = "raw", conv: ConvFactory = conv2d, head: HeadFactory = dense_head,
                branch: TensorFn = identity) -> keras.Model:
    """Builds WRN-`depth`-`width_multiplier` mapping images (H, W, C) to `num_classes` logits.

    Args:
      input_shape: (height, width, channels) of one image, channels last.
      depth: number of conv layers, 6n + 4 (10, 16, 22, 28, ...).
      width_multiplier: k, the factor on the 16/32/64 filters of the three groups.
      num_classes: number of output logits.
      l2: L2 coefficient (a loss term) for every weight group; 0 turns it off.
      seed: the initial weights are a deterministic function of this seed.
      l2_overrides: per-group coefficients overriding `l2`, keys from `L2_GROUPS`.
      initializer: the kernels' initialiser, "he_normal" (the reference) or
        "glorot_uniform" (Keras' default; trains faster at a few epochs).
      shortcut_input: what a 1x1 shortcut conv (where the shape changes) reads: "raw", the
        block's input (the reference), or "activated", the block's first BN-ReLU output (the
        WRN paper's code; trains faster at a few epochs).
      conv: builds every convolution (stem, block and 1x1 shortcut convs, in that order).
      head: builds the output layer on the pooled features, with the `dense_kernel` and
        `dense_bias` L2 coefficients.
      branch: applied once per block to the residual branch between its two convs.
    """
    if depth < 10 or (depth - 4) % 6:
        raise ValueError(f"depth must be 6n+4 with n >= 1 (10, 16, 22, 28, ...), got {depth}")
    if width_multiplier < 1:
        raise ValueError(f"width_multiplier must be a positive integer, got {width_multiplier}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (height, width, channels), got {input_shape}")
    if shortcut_input not in SHORTCUT_INPUTS:
        raise ValueError(f"shortcut_input must be one of {list(SHORTCUT_INPUTS)}, got {shortcut_input!r}")
    coeff = l2_coefficients(l2, l2_overrides)
    init = initializer_stream(seed, initializer)
    num_blocks = (depth - 4) // 6

    inputs = keras.Input(shape=tuple(input_shape))
    x = conv(16, 3, 1, coeff["input_conv"], init)(inputs)
    for group, (filters, strides) in enumerate(((16, 1), (32, 2), (64, 2)), start=1):
        for block in range(num_blocks):
            x = _block(x, filters * width_multiplier, strides if block == 0 else 1,
                       coeff[f"group_{group}_conv"], coeff["bn"], init, conv, branch, shortcut_input)
    x = keras.layers.Activation("relu")(batch_norm(coeff["bn"])(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    logits = head(num_classes, coeff["dense_kernel"], coeff["dense_bias"], init)(x)
    return keras.Model(inputs, logits, name=f"wide_resnet_{depth}_{width_multiplier}")


def mc_dropout_branch(rate: float, seed: int, filterwise: bool = False) -> TensorFn:
    """A `branch` adding test-time dropout to every residual branch, each layer seeded from
    (`seed`, block index), separately from the weights' initialiser stream."""
    rng = np.random.default_rng([seed, 1])

    def branch(x: keras.KerasTensor) -> keras.KerasTensor:
        return MCDropout(rate, seed=int(rng.integers(2**31 - 1)), filterwise=filterwise)(x)
    return branch


def wide_resnet_mc_dropout(input_shape: Sequence[int], depth: int, width_multiplier: int,
                           num_classes: int, l2: float = 0.0, seed: int = 0,
                           dropout_rate: float = 0.1, filterwise: bool = False,
                           initializer: str = "he_normal",
                           l2_overrides: Mapping[str, float] | None = None,
                           shortcut_input: str = "raw") -> keras.Model:
    """WRN with MC dropout (Gal & Ghahramani 2016) on each residual branch, active at test
    time; with rate 0 it computes exactly the plain WRN of the same seed."""
    return wide_resnet(input_shape, depth, width_multiplier, num_classes, l2=l2, seed=seed,
                       l2_overrides=l2_overrides, initializer=initializer, shortcut_input=shortcut_input,
                       branch=mc_dropout_branch(dropout_rate, seed, filterwise))


def member_head(num_members: int) -> HeadFactory:
    """A head giving `num_members` sets of logits, [B, num_members, K], from one Dense."""
    def head(num_classes: int, kernel_l2: float, bias_l2: float, init: Init) -> TensorFn:
        dense = dense_head(num_members * num_classes, kernel_l2, bias_l2, init)
        reshape = keras.layers.Reshape((num_members, num_classes))
        return lambda x: reshape(dense(x))
    return head


def wide_resnet_mimo(input_shape: Sequence[int], depth: int, width_multiplier: int,
                     num_classes: int, l2: float = 0.0, seed: int = 0, ensemble_size: int = 3,
                     initializer: str = "he_normal",
                     l2_overrides: Mapping[str, float] | None = None,
                     shortcut_input: str = "raw") -> keras.Model:
    """MIMO WRN (Havasi et al. 2021): `ensemble_size` images stacked on the channel axis in,
    one set of logits per member out, [B, M, K]. `input_shape` is one image's."""
    if ensemble_size < 1:
        raise ValueError(f"ensemble_size must be >= 1, got {ensemble_size}")
    height, width, channels = input_shape
    return wide_resnet((height, width, channels * ensemble_size), depth, width_multiplier, num_classes,
                       l2=l2, seed=seed, l2_overrides=l2_overrides, initializer=initializer,
                       shortcut_input=shortcut_input,
                       head=member_head(ensemble_size))


def batchensemble_factories(ensemble_size: int, seed: int,
                            random_sign_init: float = REFERENCE_RANDOM_SIGN_INIT
                            ) -> tuple[ConvFactory, HeadFactory]:
    """Conv and head factories of BatchEnsemble layers: the shared kernels take the WRN's
    initialiser stream, the fast weights (``ub.layers.sign_initializer(random_sign_init)``)
    their own seeds from (`seed`, layer)."""
    rng = np.random.default_rng([seed, 2])

    def next_seed() -> int:
        return int(rng.integers(2**31 - 1))

    def conv(filters: int, kernel_size: int, strides: int, l2: float, init: Init,
             padding: str = "same") -> Conv2DBatchEnsemble:
        return Conv2DBatchEnsemble(filters, kernel_size, ensemble_size, strides=strides, padding=padding,
                                   use_bias=False, kernel_initializer=init(),
                                   kernel_regularizer=l2_regularizer(l2), seed=next_seed(),
                                   random_sign_init=random_sign_init)

    def head(num_classes: int, kernel_l2: float, bias_l2: float, init: Init) -> DenseBatchEnsemble:
        return DenseBatchEnsemble(num_classes, ensemble_size, kernel_initializer=init(),
                                  kernel_regularizer=l2_regularizer(kernel_l2),
                                  bias_regularizer=l2_regularizer(bias_l2), seed=next_seed(),
                                  random_sign_init=random_sign_init)
    return conv, head


def wide_resnet_batchensemble(input_shape: Sequence[int], depth: int, width_multiplier: int,
                              num_classes: int, l2: float = 0.0, seed: int = 0,
                              ensemble_size: int = 4, initializer: str = "he_normal",
                              l2_overrides: Mapping[str, float] | None = None,
                              random_sign_init: float = REFERENCE_RANDOM_SIGN_INIT,
                              shortcut_input: str = "raw") -> keras.Model:
    """BatchEnsemble WRN (Wen et al. 2020): images [B, H, W, C] in, logits [B, M, K] out.

    The batch is tiled M times inside (member-major, so each member sees every example),
    every conv and the head are BatchEnsemble layers (one shared kernel, rank-1 fast weights
    per member, initialised by ``ub.layers.sign_initializer(random_sign_init)``: the
    reference's N(1, 0.5^2) by default, random signs for a positive value), and batch norm is
    shared by the members, as in the reference.
    """
    if ensemble_size < 1:
        raise ValueError(f"ensemble_size must be >= 1, got {ensemble_size}")
    conv, head = batchensemble_factories(ensemble_size, seed, random_sign_init)
    members = wide_resnet(input_shape, depth, width_multiplier, num_classes, l2=l2, seed=seed,
                          l2_overrides=l2_overrides, initializer=initializer, shortcut_input=shortcut_input,
                          conv=conv, head=head)
    return tiled_members(members, ensemble_size, "batchensemble")


def tiled_members(members: keras.Model, ensemble_size: int, prefix: str) -> keras.Model:
    """Wraps a network of member-major layers: images [B, ...] are tiled M times inside
    (each member sees every example) and its logits [M * B, K] returned as [B, M, K]."""
    num_classes = members.output_shape[-1]
    inputs = keras.Input(members.input_shape[1:])
    tiled = keras.layers.Lambda(lambda x: keras.ops.tile(x, (ensemble_size, 1, 1, 1)), name="tile_members")(inputs)
    logits = members(tiled)  # [M * B, K], member-major.
    by_member = keras.layers.Lambda(
        lambda z: keras.ops.transpose(keras.ops.reshape(z, (ensemble_size, -1, num_classes)), (1, 0, 2)),
        name="member_axis")(logits)
    return keras.Model(inputs, by_member, name=f"{prefix}_{members.name}")


def layer_seeds(seed: int, stream: int) -> Callable[[], int]:
    """Successive layer seeds drawn from (`seed`, `stream`): a stream apart from the weights'
    initialiser stream, one per method, so a network stays a function of its seed."""
    rng = np.random.default_rng([seed, stream])
    return lambda: int(rng.integers(2**31 - 1))


def rank1_factories(ensemble_size: int, seed: int, **factor_args: Any) -> tuple[ConvFactory, HeadFactory]:
    """Conv and head factories of rank-1 Bayesian layers (`factor_args`: their distribution,
    prior, init and sign-init arguments): the shared kernels take the WRN's initialiser
    stream, the factors' sign init and sampling their own seeds from (`seed`, layer)."""
    next_seed = layer_seeds(seed, 3)

    def conv(filters: int, kernel_size: int, strides: int, l2: float, init: Init,
             padding: str = "same") -> Conv2DRank1:
        return Conv2DRank1(filters, kernel_size, ensemble_size, strides=strides, padding=padding,
                           use_bias=False, kernel_initializer=init(), kernel_regularizer=l2_regularizer(l2),
                           seed=next_seed(), **factor_args)

    def head(num_classes: int, kernel_l2: float, bias_l2: float, init: Init) -> DenseRank1:
        return DenseRank1(num_classes, ensemble_size, kernel_initializer=init(),
                          kernel_regularizer=l2_regularizer(kernel_l2), bias_regularizer=l2_regularizer(bias_l2),
                          seed=next_seed(), **factor_args)
    return conv, head


def wide_resnet_rank1(input_shape: Sequence[int], depth: int, width_multiplier: int,
                      num_classes: int, l2: float = 0.0, seed: int = 0, initializer: str = "he_normal",
                      l2_overrides: Mapping[str, float] | None = None, shortcut_input: str = "raw",
                      *, ensemble_size: int = 4, distribution: str = "normal", prior_mean: float = 1.0,
                      prior_stddev: float = 0.1, init_stddev: float = REFERENCE_INIT_STDDEV,
                      random_sign_init: float = 0.5) -> keras.Model:
    """Rank-1 BNN WRN (Dusenberry et al. 2020): images [B, H, W, C] in, logits [B, M, K] out.

    As the reference, every conv (stem, blocks, 1x1 shortcuts) and the head are rank-1
    layers: one shared kernel, per-member factors alpha, gamma sampled per example from
    `distribution` posteriors (locations random signs, +1 with probability `random_sign_init`
    as in the reference, or N(1, random_sign_init^2) for a negative value;
    scales `init_stddev`) with prior
    N(`prior_mean`, `prior_stddev`^2) (or Cauchy); batch norm is shared by the members and
    the batch tiled M times inside. L2 acts on kernels, biases and batch norm; the factors
    are regularised by their KL, `ub.layers.rank1_kl(model)`.
    """
    if ensemble_size < 1:
        raise ValueError(f"ensemble_size must be >= 1, got {ensemble_size}")
    conv, head = rank1_factories(ensemble_size, seed, distribution=distribution, prior_mean=prior_mean,
                                 prior_stddev=prior_stddev, init_stddev=init_stddev,
                                 random_sign_init=random_sign_init)
    members = wide_resnet(input_shape, depth, width_multiplier, num_classes, l2=l2, seed=seed,
                          l2_overrides=l2_overrides, initializer=initializer, shortcut_input=shortcut_input,
                          conv=conv, head=head)
    return tiled_members(members, ensemble_size, "rank1")


def flipout_factories(seed: int, prior_stddev: float, init_stddev: float) -> tuple[ConvFactory, HeadFactory]:
    """Conv and head factories of Flipout layers (mean-field Gaussian kernels): the kernel
    means take the WRN's initialiser stream, the sampling its own seeds from (`seed`, layer)."""
    next_seed = layer_seeds(seed, 4)
    posterior = {"prior_stddev": prior_stddev, "init_stddev": init_stddev}

    def conv(filters: int, kernel_size: int, strides: int, l2: float, init: Init,
             padding: str = "same") -> Conv2DFlipout:
        return Conv2DFlipout(filters, kernel_size, strides=strides, padding=padding, use_bias=False,
                             kernel_initializer=init(), kernel_regularizer=l2_regularizer(l2),
                             seed=next_seed(), **posterior)

    def head(num_classes: int, kernel_l2: float, bias_l2: float, init: Init) -> DenseFlipout:
        return DenseFlipout(num_classes, kernel_initializer=init(), kernel_regularizer=l2_regularizer(kernel_l2),
                            bias_regularizer=l2_regularizer(bias_l2), seed=next_seed(), **posterior)
    return conv, head


def wide_resnet_variational(input_shape: Sequence[int], depth: int, width_multiplier: int,
                            num_classes: int, l2: float = 0.0, seed: int = 0, initializer: str = "he_normal",
                            l2_overrides: Mapping[str, float] | None = None, shortcut_input: str = "raw",
                            *, prior_stddev: float = 0.1, init_stddev: float = 1e-3) -> keras.Model:
    """Variational WRN (mean-field Gaussian kernels sampled by Flipout, Wen et al. 2018):
    every conv (stem, blocks, 1x1 shortcuts) and the head are Flipout layers, as the
    reference; batch norm and the head's bias are deterministic. It samples in training and
    at inference; its KL is `ub.layers.flipout_kl(model, tied_mean)` (`prior_stddev`)."""
    conv, head = flipout_factories(seed, prior_stddev, init_stddev)
    return wide_resnet(input_shape, depth, width_multiplier, num_classes, l2=l2, seed=seed,
                       l2_overrides=l2_overrides, initializer=initializer, shortcut_input=shortcut_input,
                       conv=conv, head=head)


def spectral_norm_conv(norm_multiplier: float, power_iterations: int,
                       next_seed: Callable[[], int]) -> ConvFactory:
    """A ConvFactory of SpectralNormConv2D layers (operator norm at most `norm_multiplier`):
    the kernels take the WRN's initialiser stream, the power-iteration vectors `next_seed()`."""
    def conv(filters: int, kernel_size: int, strides: int, l2: float, init: Init,
             padding: str = "same") -> SpectralNormConv2D:
        return SpectralNormConv2D(filters, kernel_size, strides=strides, padding=padding, use_bias=False,
                                  kernel_initializer=init(), kernel_regularizer=l2_regularizer(l2),
                                  norm_multiplier=norm_multiplier, power_iterations=power_iterations,
                                  seed=next_seed())
    return conv


def training_dropout_branch(rate: float, next_seed: Callable[[], int]) -> TensorFn:
    """A `branch` dropping whole feature maps in training only (SpatialDropout2D, SNGP's
    filter-wise dropout); rate 0 adds no layer."""
    def branch(x: keras.KerasTensor) -> keras.KerasTensor:
        return keras.layers.SpatialDropout2D(rate, seed=next_seed())(x) if rate > 0 else x
    return branch


def gaussian_process_head(seed: int, **gp_kwargs) -> HeadFactory:
    """A HeadFactory of MeanFieldGaussianProcess output layers (GP logits in training,
    mean-field logits at inference) with `gp_kwargs`; the output kernel takes the
    `dense_kernel` L2 coefficient (there is no bias)."""
    def head(num_classes: int, kernel_l2: float, bias_l2: float, init: Init) -> MeanFieldGaussianProcess:
        return MeanFieldGaussianProcess(num_classes, kernel_regularizer=l2_regularizer(kernel_l2), seed=seed,
                                        **gp_kwargs)
    return head


def sngp_factories(seed: int, spec_norm_bound: float, spec_norm_iterations: int, dropout_rate: float,
                   **gp_kwargs: Any) -> tuple[ConvFactory, TensorFn, HeadFactory]:
    """SNGP's conv (spectrally normalised), branch (filter-wise dropout in training) and head
    (random-feature GP with `gp_kwargs`) factories, their seeds drawn from (`seed`, 5)."""
    next_seed = layer_seeds(seed, 5)
    conv = spectral_norm_conv(spec_norm_bound, spec_norm_iterations, next_seed)
    branch = training_dropout_branch(dropout_rate, next_seed)
    return conv, branch, gaussian_process_head(next_seed(), **gp_kwargs)


def wide_resnet_sngp(input_shape: Sequence[int], depth: int, width_multiplier: int,
                     num_classes: int, l2: float = 0.0, seed: int = 0, initializer: str = "he_normal",
                     l2_overrides: Mapping[str, float] | None = None, shortcut_input: str = "raw",
                     *, spec_norm_bound: float = 6.0, spec_norm_iterations: int = 1, num_inducing: int = 1024,
                     gp_length_scale: float = 20.0, gp_input_dim: int | None = 128, gp_ridge_penalty: float = 1.0,
                     gp_covariance_momentum: float = -1.0, gp_mean_field_factor: float = 20.0,
                     dropout_rate: float = 0.1) -> keras.Model:
    """SNGP WRN (Liu et al. 2020): every conv spectrally normalised (operator norm at most
    `spec_norm_bound`), filter-wise dropout on the residual branches in training only, and a
    random-feature GP output layer: logits [B, K] in training, mean-field logits at inference.

    The GP is the reference WRN's: the pooled features projected to `gp_input_dim` (None:
    no projection) and layer-normalised, `num_inducing` orthogonal random features of
    length-scale `gp_length_scale` without the sqrt(2 / D) scaling, ridge penalty
    `gp_ridge_penalty`, exact precision (`gp_covariance_momentum` <= 0: reset it with
    `ub.layers.reset_covariances` at each epoch start) or discounted, mean-field factor
    `gp_mean_field_factor`. Seeds of the dropout, power iterations and GP come from `seed`.
    """
    conv, branch, head = sngp_factories(
        seed, spec_norm_bound, spec_norm_iterations, dropout_rate, num_inducing=num_inducing,
        length_scale=gp_length_scale, scale_features=False, input_projection_dim=gp_input_dim,
        ridge_penalty=gp_ridge_penalty, covariance_momentum=gp_covariance_momentum,
        mean_field_factor=gp_mean_field_factor)
    return wide_resnet(input_shape, depth, width_multiplier, num_classes, l2=l2, seed=seed,
                       l2_overrides=l2_overrides, initializer=initializer, shortcut_input=shortcut_input,
                       conv=conv, head=head, branch=branch)


def heteroscedastic_head(num_factors: int, temperature: float, num_mc_samples: int, seed: int) -> HeadFactory:
    """A HeadFactory of HeteroscedasticSoftmax layers (log of the MC-averaged softmax, which
    stands for logits), Glorot-uniform kernels as the reference's edward2 head."""
    def head(num_classes: int, kernel_l2: float, bias_l2: float, init: Init) -> HeteroscedasticSoftmax:
        return HeteroscedasticSoftmax(num_classes, num_factors=num_factors, temperature=temperature,
                                      num_mc_samples=num_mc_samples, kernel_regularizer=l2_regularizer(kernel_l2),
                                      bias_regularizer=l2_regularizer(bias_l2), seed=seed)
    return head


def wide_resnet_heteroscedastic(input_shape: Sequence[int], depth: int, width_multiplier: int,
                                num_classes: int, l2: float = 0.0, seed: int = 0, initializer: str = "he_normal",
                                l2_overrides: Mapping[str, float] | None = None, shortcut_input: str = "raw",
                                *, num_factors: int = 6, temperature: float = 1.3,
                                num_mc_samples: int = 10_000) -> keras.Model:
    """Heteroscedastic WRN (Collier et al. 2021): the WRN with a Monte-Carlo heteroscedastic
    softmax head (low-rank-plus-diagonal Gaussian logit noise, `num_factors` factors,
    `temperature`, `num_mc_samples` samples in training and at inference); its output is
    the log of the MC-averaged probability, [B, K]. The head's seed comes from `seed`."""
    head = heteroscedastic_head(num_factors, temperature, num_mc_samples, layer_seeds(seed, 6)())
    return wide_resnet(input_shape, depth, width_multiplier, num_classes, l2=l2, seed=seed,
                       l2_overrides=l2_overrides, initializer=initializer, shortcut_input=shortcut_input, head=head)
