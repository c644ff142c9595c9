"""What the uncertainty layers share: initialiser arguments and their seeding, noise seeds per
replica, layer-tree walks, and the Dense- and Conv2D-style argument checks and kernel maps
(shape checks, the linear map, output shape, config), so that every layer validates and
reports its arguments in the same words."""
from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import keras
import numpy as np
from keras import ops

InitializerLike = str | dict | keras.initializers.Initializer | None
RegularizerLike = str | dict | keras.regularizers.Regularizer | None
Shape = Sequence[int | None]


# ----- initialisers and seeds -----------------------------------------------------------------
def derived_seed(seed: int, stream: int) -> int:
    """A seed for the `stream`-th initialiser or noise stream of a layer seeded with `seed`."""
    return int(np.random.default_rng([seed, stream]).integers(2**31 - 1))


class ReplicaSeedGenerator(keras.random.SeedGenerator):
    """A seed generator whose seeds differ between tf.distribute replicas, for noise drawn per
    example: mirrored replicas share a generator's state, so with a plain one the j-th examples
    of every replica would draw the same noise (dropout masks, Flipout signs, rank-1 factors).
    Noise shared by the batch (the heteroscedastic head's draws, variational kernel samples)
    keeps a plain generator: one draw for the global batch on any number of replicas, as on
    one device. On one device, and on the JAX and PyTorch backends, its seeds are the plain
    generator's."""

    def next(self, ordered: bool = True):
        seed = super().next(ordered)
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf
            replica = tf.distribute.get_replica_context()
            if replica is not None and replica.num_replicas_in_sync > 1:
                # A far-apart stream per replica; the counter half of the seed stays, since
                # shifting it would replay the noise of other calls.
                offset = tf.cast(replica.replica_id_in_sync_group, seed.dtype) * 0x9E3779B
                seed += tf.stack([offset, tf.zeros_like(offset)])
        return seed


def is_seeded_random(init: Any) -> bool:
    """True for a random initialiser (Keras' or one of ours) holding an integer seed."""
    return isinstance(getattr(init, "seed", None), int) and "seed" in init.get_config()


def with_seed(init: keras.initializers.Initializer, seed: int) -> keras.initializers.Initializer:
    """A copy of `init` drawing from `seed` instead of its own seed."""
    return init.__class__.from_config({**init.get_config(), "seed": seed})


def next_draw(init: keras.initializers.Initializer) -> keras.initializers.Initializer:
    """An initialiser like `init` whose values are independent of `init`'s: a copy under a
    derived seed when an integer seed would repeat `init`'s values, else `init` itself."""
    return with_seed(init, derived_seed(init.seed, 1)) if is_seeded_random(init) else init


def resolve_initializer(identifier: InitializerLike, default: Callable[[int], Any],
                        seed: int) -> keras.initializers.Initializer:
    """None -> `default(seed)`; a name -> that Keras initialiser, seeded with `seed` when it
    is random; an initialiser object -> itself, seed and all."""
    if identifier is None:
        return default(seed)
    if isinstance(identifier, keras.initializers.Initializer):
        return identifier
    init = keras.initializers.get(identifier)
    return with_seed(init, seed) if is_seeded_random(init) else init


def check_initializer(identifier: InitializerLike) -> InitializerLike:
    """Names and None stay as given (seeded at build); configs become objects."""
    return identifier if identifier is None or isinstance(identifier, str) else \
        keras.initializers.get(identifier)


def serialize_initializer(identifier: InitializerLike) -> str | dict | None:
    """The config form of a `check_initializer` result: names and None as they are."""
    return identifier if identifier is None or isinstance(identifier, str) else \
        keras.initializers.serialize(identifier)


# ----- layer trees ----------------------------------------------------------------------------
def walk(layer: keras.layers.Layer) -> Iterator[keras.layers.Layer]:
    """`layer` and every layer nested in it, depth first (to collect a model's KL terms)."""
    yield layer
    for sub in getattr(layer, "layers", []):
        yield from walk(sub)


# ----- Dense- and Conv2D-style arguments and kernel maps -------------------------------------------
def check_units(units: int) -> int:
    """`units` of a Dense-style layer, checked to be >= 1."""
    if units < 1:
        raise ValueError(f"units must be >= 1, got {units}.")
    return units


def pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    """(h, w) from one positive int or a pair of them; `name` is the argument's, for errors."""
    values = (value, value) if isinstance(value, int) else tuple(value)
    if len(values) != 2 or any(not isinstance(v, int) or v < 1 for v in values):
        raise ValueError(f"{name} must be a positive int or a pair of them, got {value}.")
    return values


def conv2d_arguments(filters: int, kernel_size: int | Sequence[int], strides: int | Sequence[int],
                     padding: str) -> tuple[int, tuple[int, int], tuple[int, int], str]:
    """(filters, kernel_size, strides, padding) of a Conv2D-style layer, checked, with the
    kernel size and strides as pairs."""
    if filters < 1:
        raise ValueError(f"filters must be >= 1, got {filters}.")
    if padding not in ("same", "valid"):
        raise ValueError(f'padding must be "same" or "valid", got {padding!r}.')
    return filters, pair(kernel_size, "kernel_size"), pair(strides, "strides"), padding


def check_member_batch(layer: keras.layers.Layer, batch_size: int | None) -> None:
    """Raise unless a static batch size divides into `layer.ensemble_size` member-major
    blocks (rows [m*B, (m+1)*B) of member m), as the ensemble layers' inputs must."""
    if batch_size is not None and batch_size % layer.ensemble_size:
        raise ValueError(
            f"{type(layer).__name__}: the batch size ({batch_size}) must be divisible by "
            f"ensemble_size={layer.ensemble_size}; tile the batch once per member "
            f"(member-major: rows [m*B, (m+1)*B) belong to member m).")


def conv_length(length: int | None, kernel: int, stride: int, padding: str) -> int | None:
    """A convolution's output length along one spatial axis (None when the input's is)."""
    if length is None:
        return None
    return -(-length // stride) if padding == "same" else (length - kernel) // stride + 1


class _KernelMap:
    """What the two kernel maps share: the kernel weight, initialised and regularised as the
    layer's arguments say. The layer sets ``kernel_initializer``, ``kernel_regularizer``
    and ``seed``."""

    default_kernel_initializer: Callable[[int], keras.initializers.Initializer]

    def add_kernel(self, shape: Sequence[int], name: str = "kernel"):
        """The kernel: ``kernel_initializer`` (None: ``default_kernel_initializer``, both
        seeded from ``seed`` unless an initialiser object) and ``kernel_regularizer``."""
        return self.add_weight(
            shape=tuple(shape), name=name,
            initializer=resolve_initializer(self.kernel_initializer,
                                            self.default_kernel_initializer, self.seed),
            regularizer=self.kernel_regularizer)


class DenseKernelMap(_KernelMap):
    """Mixin of the Dense-style layers: a kernel [features, units] applied over the inputs'
    last axis, [batch, ..., features] -> [batch, ..., units], Glorot-uniform by default as
    keras Dense. The layer sets ``self.units`` (``check_units``)."""

    units: int
    default_kernel_initializer = staticmethod(
        lambda seed: keras.initializers.GlorotUniform(seed=seed))

    def kernel_shape(self, input_shape: Shape) -> tuple[int, int]:
        """The kernel's shape for these inputs, whose features must be known at build."""
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(f"{type(self).__name__} expects inputs [batch, ..., features] "
                             f"with known features, got shape {input_shape}.")
        return input_shape[-1], self.units

    def linear(self, inputs, kernel):
        """inputs @ kernel over the last axis."""
        return ops.matmul(inputs, kernel)

    def compute_output_shape(self, input_shape: Shape) -> tuple[int | None, ...]:
        return (*input_shape[:-1], self.units)

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units}


class Conv2DKernelMap(_KernelMap):
    """Mixin of the Conv2D-style layers: a channels-last 2-D convolution with a kernel [kh,
    kw, C_in, filters], He-normal by default as the repo's convolutional models. The layer
    sets ``filters``, ``kernel_size``, ``strides`` and ``padding`` (``conv2d_arguments``)."""

    filters: int
    kernel_size: tuple[int, int]
    strides: tuple[int, int]
    padding: str
    default_kernel_initializer = staticmethod(lambda seed: keras.initializers.HeNormal(seed=seed))

    def kernel_shape(self, input_shape: Shape) -> tuple[int, int, int, int]:
        """The kernel's shape for inputs [batch, height, width, channels], whose channels
        must be known at build."""
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(f"{type(self).__name__} expects inputs [batch, height, width, "
                             f"channels] with known channels, got shape {input_shape}.")
        return (*self.kernel_size, input_shape[-1], self.filters)

    def linear(self, inputs, kernel):
        """The convolution of inputs with kernel."""
        return ops.conv(inputs, kernel, strides=self.strides, padding=self.padding,
                        data_format="channels_last")

    def compute_output_shape(self, input_shape: Shape) -> tuple[int | None, ...]:
        return (input_shape[0],
                *(conv_length(n, k, s, self.padding)
                  for n, k, s in zip(input_shape[1:3], self.kernel_size, self.strides)),
                self.filters)

    def get_config(self) -> dict:
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size, "strides": self.strides,
                "padding": self.padding}
