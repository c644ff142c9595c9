"""Compute cost of a model and of the machine, to report the achieved fraction of peak.

`flops_per_example` counts the multiply-adds of the conv and dense layers (the matrix
products that dominate a CNN's cost; BatchNorm, activations, pooling and additions are not
counted), as 2 FLOPs each, and triples them for a training step (forward + backward).
`matmul_peak_flops` times a large float32 matmul on the current Keras backend. The
achieved fraction of peak is `flops_per_example(model) * examples_per_second / peak`.
"""
import math
import time

import keras

# Layers whose every kernel weight is used once per output position (channels last):
# multiply-adds per example = output positions x kernel size. (For a depthwise kernel
# (kh, kw, cin, multiplier) this also holds: each of cin * multiplier outputs uses kh * kw.)
_COUNTED = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D,
            keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D, keras.layers.Dense)


def _layers(model: keras.Model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _layers(layer)
        else:
            yield layer


def multiply_adds_per_example(model: keras.Model) -> int:
    """Multiply-adds of one forward pass of one example through the conv and dense layers.

    Raises ValueError for a layer holding a kernel of another kind (it would go uncounted)
    or a channels-first convolution.
    """
    total = 0
    for layer in _layers(model):
        if isinstance(layer, _COUNTED):
            if getattr(layer, "data_format", "channels_last") != "channels_last":
                raise ValueError(f"layer {layer.name}: only channels_last is counted, got "
                                 f"{layer.data_format}")
            positions = math.prod(layer.output.shape[1:-1])
            total += positions * math.prod(layer.kernel.shape)
        elif any(w.path.endswith("kernel") for w in layer.weights):
            raise ValueError(f"cannot count the multiply-adds of layer {layer.name} "
                             f"({type(layer).__name__}); counted types: "
                             f"{[t.__name__ for t in _COUNTED]}")
    return total


def flops_per_example(model: keras.Model, training: bool = True) -> int:
    """FLOPs per example: 2 per multiply-add, x3 for a training step (forward + backward)."""
    return 2 * multiply_adds_per_example(model) * (3 if training else 1)


def matmul_peak_flops(n: int = 4096, repeats: int = 5) -> float:
    """The best FLOP/s of `repeats` float32 n x n matmuls (2 n^3 FLOPs) on the Keras backend."""
    if n < 1 or repeats < 1:
        raise ValueError(f"n and repeats must be >= 1, got {n}, {repeats}")
    a = keras.random.normal((n, n), seed=0)
    b = keras.random.normal((n, n), seed=1)
    keras.ops.convert_to_numpy(keras.ops.matmul(a, b)[0, 0])  # warm-up
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        keras.ops.convert_to_numpy(keras.ops.matmul(a, b)[0, 0])
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best
