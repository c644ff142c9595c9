"""Shared fixtures: where the real data lives, and a fresh Keras/TF state per test."""
import os
import pathlib

import pytest

# Two logical CPU devices for tf.distribute tests (configured below, before TF starts).
os.environ.setdefault("UB_NUM_LOGICAL_CPUS", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def shared_data_dir() -> pathlib.Path:
    """The read-only real data folder: $UB_SHARED_DATA, else ../shared/data beside the repo."""
    return pathlib.Path(os.environ.get("UB_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real data folder {path} is absent (set UB_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def fashion_mnist_dir() -> pathlib.Path:
    path = pathlib.Path("/usr/share/datasets/fashion-mnist")
    if not (path / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"Fashion-MNIST idx files absent at {path} (apt-get install dataset-fashion-mnist)")
    return path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow files first (the end-to-end script runs of tests/baselines/ and files marked slow):
    `make test` hands whole files to two pytest-xdist workers in collection order, so the long
    ones start early and the workers finish together, not one idling through the last file."""
    slow = {item.path for item in items
            if item.path.relative_to(REPO_ROOT).parts[:2] == ("tests", "baselines") or item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)


def _split_cpu_into_logical_devices(n: int = 2) -> None:
    """Give TensorFlow n logical CPU devices so tf.distribute tests can use MirroredStrategy."""
    try:
        import tensorflow as tf
    except ImportError:
        return
    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(n)])


def _run_ops_one_at_a_time() -> None:
    """As every baseline run does (`training.loop`): in-process runs stay bitwise repeatable
    while the other pytest worker shares the cores."""
    try:
        from uncertainty_baselines.training import loop
    except ImportError:
        return
    loop.run_ops_one_at_a_time()


_split_cpu_into_logical_devices(int(os.environ["UB_NUM_LOGICAL_CPUS"]))
_run_ops_one_at_a_time()
