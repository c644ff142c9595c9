"""A Vision Transformer in Flax (linen) with big_vision's parameter names, and its
BatchEnsemble variant.

The module tree is named as big_vision's `models/vit.py` names it (`embedding`,
`pos_embedding`, `cls`, `Transformer/encoderblock_<i>/{LayerNorm_0,
MultiHeadDotProductAttention_0, LayerNorm_1, MlpBlock_0/{Dense_0, Dense_1}}`,
`Transformer/encoder_norm`, `pre_logits`, `head`), with the same shapes and initialisers, so
a big_vision `.npz` checkpoint maps onto it key for key (`jax_training.pretrained`).

BatchEnsemble (Wen, Tran & Ba 2020; the reference's ViT variant): with `ens_size` M > 1 the
MLP blocks of the encoder layers in `be_layers` and the head become BatchEnsemble layers.
Before the first of them the token sequences are tiled M times along the batch, so every
member sees every example; a BatchEnsemble dense layer keeps the shared `kernel` (loadable
from a deterministic checkpoint) and adds per-member rank-1 fast weights
`fast_weight_alpha` [M, in], `fast_weight_gamma` [M, out] and a per-member `bias` [M, out]:
y_m = ((x * alpha_m) @ kernel) * gamma_m + bias_m. The model then returns logits
[B, M, K] instead of [B, K].
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Initializer = Callable[..., jax.Array]


def sign_initializer(random_sign_init: float) -> Initializer:
    """Fast-weight initialiser of the reference (edward2): for p > 0 a random sign vector,
    +1 with probability p; for p < 0 a Gaussian with mean 1 and standard deviation -p."""
    if random_sign_init == 0 or random_sign_init > 1:
        raise ValueError(f"random_sign_init must be non-zero and at most 1, got {random_sign_init} (> 0: "
                         "P(+1) of random signs, < 0: minus the stddev of a Gaussian around 1)")

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        if random_sign_init > 0:
            return (2.0 * jax.random.bernoulli(key, random_sign_init, shape) - 1.0).astype(dtype)
        return (1.0 + (-random_sign_init) * jax.random.normal(key, shape)).astype(dtype)

    return init


class DenseBatchEnsemble(nn.Module):
    """Dense layer of M members sharing `kernel`; the input holds the members' rows
    stacked along the batch ([M * B, ..., in], member-major)."""
    features: int
    ens_size: int
    random_sign_init: float = 0.5
    kernel_init: Initializer = nn.initializers.xavier_uniform()
    bias_init: Initializer = nn.initializers.normal(stddev=1e-6)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        m, inputs = self.ens_size, x.shape[-1]
        kernel = self.param("kernel", self.kernel_init, (inputs, self.features))
        alpha = self.param("fast_weight_alpha", sign_initializer(self.random_sign_init), (m, inputs))
        gamma = self.param("fast_weight_gamma", sign_initializer(self.random_sign_init), (m, self.features))
        bias = self.param("bias", self.bias_init, (m, self.features))
        if x.shape[0] % m:
            raise ValueError(f"DenseBatchEnsemble: batch {x.shape[0]} is not a multiple of ens_size {m}")
        xm = x.reshape((m, x.shape[0] // m) + x.shape[1:])
        per_member = lambda v: v.reshape((m,) + (1,) * (x.ndim - 1) + v.shape[-1:])  # noqa: E731
        y = jnp.dot(xm * per_member(alpha), kernel) * per_member(gamma) + per_member(bias)
        return y.reshape(x.shape[:-1] + (self.features,))


class MlpBlock(nn.Module):
    """The transformer's feed-forward block (big_vision's MlpBlock); BatchEnsemble dense
    layers when `ens_size` > 1."""
    mlp_dim: int | None = None
    dropout: float = 0.0
    ens_size: int = 1
    random_sign_init: float = 0.5

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
        inits = dict(kernel_init=nn.initializers.xavier_uniform(),
                     bias_init=nn.initializers.normal(stddev=1e-6))
        width = x.shape[-1]

        def dense(features: int, name: str) -> nn.Module:
            if self.ens_size > 1:
                return DenseBatchEnsemble(features, self.ens_size, self.random_sign_init, name=name, **inits)
            return nn.Dense(features, name=name, **inits)

        x = dense(self.mlp_dim or 4 * width, "Dense_0")(x)
        x = nn.gelu(x)
        x = nn.Dropout(rate=self.dropout)(x, deterministic)
        return dense(width, "Dense_1")(x)


class Encoder1DBlock(nn.Module):
    """Pre-norm self-attention + MLP, each with a residual connection."""
    mlp_dim: int | None = None
    num_heads: int = 12
    dropout: float = 0.0
    ens_size: int = 1
    random_sign_init: float = 0.5

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
        y = nn.LayerNorm(name="LayerNorm_0")(x)
        y = nn.MultiHeadDotProductAttention(
            num_heads=self.num_heads, kernel_init=nn.initializers.xavier_uniform(),
            deterministic=deterministic, name="MultiHeadDotProductAttention_0")(y, y)
        y = nn.Dropout(rate=self.dropout)(y, deterministic)
        x = x + y
        y = nn.LayerNorm(name="LayerNorm_1")(x)
        y = MlpBlock(mlp_dim=self.mlp_dim, dropout=self.dropout, ens_size=self.ens_size,
                     random_sign_init=self.random_sign_init, name="MlpBlock_0")(y, deterministic)
        y = nn.Dropout(rate=self.dropout)(y, deterministic)
        return x + y


class ViT(nn.Module):
    """ViT classifier: patches -> learned position embeddings -> encoder -> pool -> head.

    Attributes follow big_vision's `vit._Model` (`pool_type` 'tok' prepends a class token
    named `cls`, 'gap' averages the tokens; `rep_size` > 0 adds the tanh `pre_logits`
    layer; the head kernel starts at zero) plus the BatchEnsemble ones (`ens_size`,
    `be_layers`, `random_sign_init`). `__call__(images [B, H, W, C], train)` returns logits
    [B, K], or [B, M, K] with `ens_size` M > 1.
    """
    num_classes: int
    patch_size: Sequence[int] = (16, 16)
    width: int = 768
    depth: int = 12
    mlp_dim: int | None = None
    num_heads: int = 12
    pool_type: str = "tok"
    rep_size: int = 0
    dropout: float = 0.0
    head_zeroinit: bool = True
    ens_size: int = 1
    be_layers: Sequence[int] = ()
    random_sign_init: float = 0.5

    @nn.compact
    def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
        patch = tuple(self.patch_size)
        x = nn.Conv(self.width, patch, strides=patch, padding="VALID", name="embedding")(images)
        n, h, w, c = x.shape
        x = x.reshape(n, h * w, c)
        x = x + self.param("pos_embedding", nn.initializers.normal(stddev=1 / np.sqrt(c)),
                           (1, h * w, c), x.dtype)
        if self.pool_type == "tok":
            cls = self.param("cls", nn.initializers.zeros, (1, 1, c), x.dtype)
            x = jnp.concatenate([jnp.tile(cls, [n, 1, 1]), x], axis=1)
        x = nn.Dropout(rate=self.dropout)(x, not train)
        x = Encoder(depth=self.depth, mlp_dim=self.mlp_dim, num_heads=self.num_heads,
                    dropout=self.dropout, ens_size=self.ens_size, be_layers=tuple(self.be_layers),
                    random_sign_init=self.random_sign_init, name="Transformer")(x, deterministic=not train)
        x = x[:, 0] if self.pool_type == "tok" else jnp.mean(x, axis=1)
        if self.rep_size:
            x = nn.tanh(nn.Dense(self.rep_size, name="pre_logits")(x))
        kernel_init = nn.initializers.zeros if self.head_zeroinit else nn.initializers.lecun_normal()
        if self.ens_size == 1:
            return nn.Dense(self.num_classes, kernel_init=kernel_init, name="head")(x)
        if x.shape[0] == n:  # No BatchEnsemble encoder layer tiled the batch: the head does.
            x = jnp.tile(x, [self.ens_size, 1])
        logits = DenseBatchEnsemble(self.num_classes, self.ens_size, self.random_sign_init,
                                    kernel_init=kernel_init, bias_init=nn.initializers.zeros, name="head")(x)
        return jnp.transpose(logits.reshape(self.ens_size, n, self.num_classes), (1, 0, 2))


class Encoder(nn.Module):
    """`depth` encoder blocks and the final LayerNorm; the batch is tiled to the members
    before the first BatchEnsemble block."""
    depth: int
    mlp_dim: int | None = None
    num_heads: int = 12
    dropout: float = 0.0
    ens_size: int = 1
    be_layers: Sequence[int] = ()
    random_sign_init: float = 0.5

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
        be_layers = set(self.be_layers) if self.ens_size > 1 else set()
        for layer in range(self.depth):
            if be_layers and layer == min(be_layers):
                x = jnp.tile(x, [self.ens_size, 1, 1])
            x = Encoder1DBlock(mlp_dim=self.mlp_dim, num_heads=self.num_heads, dropout=self.dropout,
                               ens_size=self.ens_size if layer in be_layers else 1,
                               random_sign_init=self.random_sign_init,
                               name=f"encoderblock_{layer}")(x, deterministic)
        return nn.LayerNorm(name="encoder_norm")(x)


MODEL_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ViT)
                                      if f.name not in ("parent", "name", "num_classes"))


def model_errors(model_config: dict[str, Any], image_shape: Sequence[int] | None = None) -> list[str]:
    """Every problem of ViT arguments `model_config` (unknown names, impossible shapes), so a
    bad config fails before any training; `image_shape` (H, W, C) checks the patching."""
    errors = [f"model.{k}: unknown ViT field (valid: {', '.join(MODEL_FIELDS)})"
              for k in model_config if k not in MODEL_FIELDS]
    get = model_config.get
    patch = tuple(get("patch_size", (16, 16)))
    width, heads, depth = get("width", 768), get("num_heads", 12), get("depth", 12)
    if len(patch) != 2 or min(patch) < 1:
        errors.append(f"model.patch_size must be two positive ints, got {patch}")
    elif image_shape is not None and (image_shape[0] % patch[0] or image_shape[1] % patch[1]):
        errors.append(f"model.patch_size {patch} does not tile the {tuple(image_shape[:2])} images")
    if width < 1 or heads < 1 or width % heads:
        errors.append(f"model.width {width} must be a positive multiple of model.num_heads {heads}")
    if depth < 1:
        errors.append(f"model.depth must be >= 1, got {depth}")
    if get("pool_type", "tok") not in ("tok", "gap"):
        errors.append(f"model.pool_type must be 'tok' or 'gap', got {get('pool_type')!r}")
    if not 0.0 <= get("dropout", 0.0) < 1.0:
        errors.append(f"model.dropout must be in [0, 1), got {get('dropout')}")
    ens_size = get("ens_size", 1)
    if ens_size < 1:
        errors.append(f"model.ens_size must be >= 1, got {ens_size}")
    bad_layers = [i for i in get("be_layers", ()) if not 0 <= i < depth]
    if bad_layers:
        errors.append(f"model.be_layers {bad_layers} are not encoder layers 0..{depth - 1}")
    sign_init = get("random_sign_init", 0.5)
    if ens_size > 1 and (sign_init == 0 or sign_init > 1):
        errors.append(f"model.random_sign_init must be non-zero and at most 1 (P(+1)), got {sign_init}")
    return errors
