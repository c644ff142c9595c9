"""tf.distribute strategy selection, and synchronised batch norm across replicas."""
from __future__ import annotations

import keras
import tensorflow as tf

STRATEGIES = ("cpu", "mirrored", "tpu")


def get_strategy(name: str, num_cores: int | None = None, tpu: str | None = None) -> tf.distribute.Strategy:
    """The strategy called `name`.

    cpu: one device (the first CPU). mirrored: MirroredStrategy over the first `num_cores`
    local GPUs, else logical CPUs (all of them when None). tpu: TPUStrategy on the TPU at
    address `tpu` ('' or None for the local one).
    """
    if name == "cpu":
        return tf.distribute.OneDeviceStrategy("/cpu:0")
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        if num_cores is not None and not 1 <= num_cores <= len(devices):
            raise ValueError(f"num_cores must be in [1, {len(devices)}] (the local "
                             f"{devices[0].device_type} devices), got {num_cores}")
        return tf.distribute.MirroredStrategy([d.name for d in devices[:num_cores]])
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"unknown strategy {name!r}; valid: {list(STRATEGIES)}")


def split_cpu(num_devices: int) -> None:
    """On a machine without GPUs, give TensorFlow `num_devices` logical CPU devices.

    Lets MirroredStrategy run `num_devices` replicas on one CPU (tests, simulating a
    multi-device run). Must run before TensorFlow initialises its devices; a no-op when
    GPUs exist or the CPU is already split into at least that many devices.
    """
    if num_devices < 1:
        raise ValueError(f"num_devices must be >= 1, got {num_devices}")
    if tf.config.list_physical_devices("GPU"):
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu) or [None]
    if len(current) >= num_devices:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)])
    except RuntimeError as e:
        raise RuntimeError(f"cannot split the CPU into {num_devices} devices after TensorFlow "
                           f"initialised its {len(current)}; call split_cpu first") from e


def synchronize_batch_norm(model: keras.Model) -> int:
    """Make every BatchNormalization layer of `model` take its statistics over the global batch.

    Keras 3 reads `synchronized` when the layer is called (TF backend only), so setting it
    on a built model before the first traced step is enough. Returns the number of layers set.
    """
    if keras.backend.backend() != "tensorflow":
        raise ValueError(f"synchronized batch norm needs the TensorFlow backend, not {keras.backend.backend()}")
    layers = [l for l in _all_layers(model) if isinstance(l, keras.layers.BatchNormalization)]
    for layer in layers:
        layer.synchronized = True
    return len(layers)


def _all_layers(layer: keras.layers.Layer):
    for sub in getattr(layer, "layers", []):
        yield sub
        yield from _all_layers(sub)
