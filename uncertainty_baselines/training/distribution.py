"""tf.distribute strategy selection (one device, mirrored, multi-worker from TF_CONFIG,
TPU), host values over every replica, and synchronised batch norm across replicas."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from typing import Any

import keras
import numpy as np
import tensorflow as tf

STRATEGIES = ("cpu", "mirrored", "multi_worker", "tpu")


class ClusterError(RuntimeError):
    """A multi-worker cluster that is misdescribed (TF_CONFIG) or unreachable."""


@dataclasses.dataclass(frozen=True)
class ClusterTask:
    """This process's place in a TF_CONFIG cluster: {task type: [host:port, ...]}."""
    cluster: dict[str, list[str]]
    task_type: str
    task_index: int

    @property
    def address(self) -> str:
        return self.cluster[self.task_type][self.task_index]

    @property
    def is_chief(self) -> bool:
        """The chief, or worker 0 when the cluster has no chief: the one process that writes."""
        return self.task_type == "chief" or (self.task_type == "worker" and self.task_index == 0
                                             and "chief" not in self.cluster)

    @property
    def peers(self) -> list[str]:
        return [a for addresses in self.cluster.values() for a in addresses if a != self.address]


def read_tf_config(text: str | None = None) -> ClusterTask:
    """Parse and check TF_CONFIG (default: the environment's); ClusterError says what is wrong."""
    text = os.environ.get("TF_CONFIG", "") if text is None else text
    example = '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'
    if not text.strip():
        raise ClusterError(f"--strategy=multi_worker needs TF_CONFIG, e.g. TF_CONFIG='{example}'")
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        task_type, task_index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError) as e:
        raise ClusterError(f"TF_CONFIG does not parse ({type(e).__name__}: {e}); expected e.g. {example}") from None
    if not isinstance(cluster, dict) or not all(
            isinstance(v, list) and all(isinstance(a, str) and a.rpartition(":")[2].isdigit() for a in v)
            for v in cluster.values()):
        raise ClusterError(f"TF_CONFIG cluster must map task types to lists of 'host:port', got {cluster!r}")
    if task_type not in cluster or not 0 <= task_index < len(cluster[task_type]):
        raise ClusterError(f"TF_CONFIG task {task_type}:{task_index} is not in the cluster {cluster}")
    addresses = [a for v in cluster.values() for a in v]
    twice = sorted({a for a in addresses if addresses.count(a) > 1})
    if twice:
        raise ClusterError(f"TF_CONFIG names {twice} more than once: every task needs its own host:port")
    return ClusterTask({k: list(v) for k, v in cluster.items()}, task_type, task_index)


# Run by a separate process: TF waits for the cluster in C++ holding the GIL, so no thread
# or signal handler of the waiting process could run. argv: pid, seconds, message, peers...
_WATCHDOG = """
import os, signal, socket, sys, time
pid, seconds, message, peers = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4:]
time.sleep(seconds)
def silent(address):
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=1.0).close()
    except OSError:
        return True
    return False
print(f"stopped: {message}; not answering: {[p for p in peers if silent(p)] or 'none'}", file=sys.stderr, flush=True)
os.kill(pid, signal.SIGKILL)
"""


def start_multi_worker(task: ClusterTask, timeout_s: float) -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy, once every task has joined (a first collective). After
    `timeout_s` without them a watchdog process names the silent peers and ends this one;
    later, a collective that waits longer than `timeout_s` (a killed worker) fails."""
    message = (f"{task.task_type} {task.task_index} ({task.address}): the cluster did not assemble within "
               f"{timeout_s:g} s (--peer_timeout_s). Start every task of the TF_CONFIG cluster, with the same "
               "cluster, on reachable hosts")
    watchdog = subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(timeout_s), message,
                                 *task.peers])
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout_s))
        barrier(strategy)
        return strategy
    finally:
        watchdog.kill()
        watchdog.wait()


def get_strategy(name: str, num_cores: int | None = None, tpu: str | None = None,
                 peer_timeout_s: float = 300.0) -> tf.distribute.Strategy:
    """The strategy called `name`.

    cpu: one device (the first CPU). mirrored: MirroredStrategy over the first `num_cores`
    local GPUs, else logical CPUs (all of them when None). multi_worker:
    MultiWorkerMirroredStrategy over the TF_CONFIG cluster (each worker's local GPUs, else
    one CPU); peers must answer within `peer_timeout_s`, and a collective that waits longer
    (a killed worker) fails instead of hanging. tpu: TPUStrategy on the TPU at address `tpu`
    ('' or None for the local one).
    """
    if name == "cpu":
        return tf.distribute.OneDeviceStrategy("/cpu:0")
    if name == "multi_worker":
        return start_multi_worker(read_tf_config(), peer_timeout_s)
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


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's files (always, but for non-chief workers)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return True
    return ClusterTask(resolver.cluster_spec().as_dict(), resolver.task_type, resolver.task_id).is_chief


def barrier(strategy: tf.distribute.Strategy) -> None:
    """Wait until every worker of a multi-worker strategy gets here (no-op otherwise): the
    other workers stay up until the chief has written the run's files."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.constant(1.0)), axis=None)


def gather_in_graph(strategy: tf.distribute.Strategy, values: dict[str, Any]) -> dict[str, Any]:
    """Inside a tf.function: a multi-worker strategy's per-replica values all-gathered along
    axis 0 (one collective per key, so every worker holds the whole batch); others as they are."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return {k: strategy.gather(v, axis=0) for k, v in values.items()}
    return values


def host_values(strategy: tf.distribute.Strategy, value: Any) -> np.ndarray:
    """A (per-replica) value as one host array, the replicas concatenated in order along axis 0."""
    return np.concatenate([np.asarray(t) for t in strategy.experimental_local_results(value)])


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
