"""Tiny generated sources for the offline preparation tests (tests/datasets/test_prepare.py,
tests/faults/test_prepare_faults.py): class-folder zips, the official CIFAR-10 python
archive layout and (Fashion-)MNIST idx folders, a few images each."""
import gzip
import io
import pickle
import tarfile
import zipfile

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from uncertainty_baselines.datasets import local_builders as lb

CLASSES = lb.CIFAR10_CLASSES
SMALL = {"train": 2, "test": 1}  # Images per class and split of the usual class-folder fixture.


def random_image(seed, shape=(32, 32, 3)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def encode(image, fmt):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def class_folder_entries(per_class, fmt="PNG", classes=CLASSES):
    """{archive path: (image, class index)}: per_class images per class in train and test."""
    entries = {}
    for split_index, split in enumerate(("train", "test")):
        for name in classes:
            label = CLASSES.index(name)
            for i in range(per_class[split]):
                image = random_image(1000 * split_index + 10 * label + i)
                entries[f"cifar10-jpeg/{split}/{name}/{i:04d}.{fmt.lower()}"] = (image, label)
    return entries


def write_zip(path, entries, fmt="PNG", extra=()):
    with zipfile.ZipFile(path, "w") as archive:
        for name, (image, _) in entries.items():
            archive.writestr(name, encode(image, fmt))
        for name, data in extra:
            archive.writestr(name, data)
    return path


def read_split(data_dir, name, split):
    """{id or index: (image, label)} read back through plain TFDS."""
    builder = tfds.builder(name, data_dir=data_dir)
    out = {}
    for i, ex in enumerate(tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False))):
        out[ex["id"].decode() if "id" in ex else i] = (ex["image"], int(ex["label"]))
    return out


def write_cifar_python_tar(path, batches, extra_members=()):
    """The official cifar-10-python.tar.gz layout with the given {batch name: (images, labels)}."""
    with tarfile.open(path, "w:gz") as tar:
        for name, (images, labels) in batches.items():
            data = pickle.dumps({b"data": images.transpose(0, 3, 1, 2).reshape(len(images), -1),
                                 b"labels": list(labels)})
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, data in extra_members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def tiny_python_batches():
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    return {name: (np.stack([random_image(50 * k + i) for i in range(3)]), [k, (k + 1) % 10, 9])
            for k, name in enumerate(names)}


def write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def idx_fixture(directory, n_train=6, n_test=4):
    """The four (Fashion-)MNIST idx files in `directory`; returns {prefix: (images, labels)}."""
    directory.mkdir()
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = np.random.default_rng(n).integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = np.arange(n) % 10
        write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", labels)
        arrays[prefix] = (images, labels)
    return arrays


def assert_nothing_written(data_dir):
    assert not data_dir.exists() or list(data_dir.iterdir()) == []
