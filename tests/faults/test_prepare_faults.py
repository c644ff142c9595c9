"""Fault injection for offline preparation: a preparation killed with SIGKILL mid-way, a
concurrent one, an unwritable data_dir, malformed archives, a subset where the full set is
asked for, a subset missing a class. The command's errors are one line with exit status 2.
Sources are the tiny generated ones of tests/prepare_fixtures.py."""
import errno
import os
import pathlib
import subprocess
import sys
import textwrap
import time

import pytest

from prepare_fixtures import CLASSES, SMALL, class_folder_entries, idx_fixture, read_split, write_zip
from uncertainty_baselines.datasets import prepare as prepare_module
from uncertainty_baselines.datasets.prepare import STAGING_PREFIX, ExpectedCounts, run
from uncertainty_baselines.runs.lock import is_locked

# Prepares cifar10 (argv 1 -> argv 2) from 20 train and 10 test images but stalls in the
# test split, when TFDS has written the train shards, and says so by creating the file argv 3.
STALLING_PREPARATION = textwrap.dedent("""
    import pathlib, sys, time
    from uncertainty_baselines.datasets import local_builders as lb, prepare
    decode, decoded = lb.decode_image, []
    def stall(*args):
        decoded.append(args)
        if len(decoded) == 25:
            pathlib.Path(sys.argv[3]).touch()
            time.sleep(600)
        return decode(*args)
    lb.decode_image = stall
    prepare.prepare("cifar10", sys.argv[1], sys.argv[2], check=False)
""")


def staging_folders(data_dir):
    return sorted(data_dir.glob(f"{STAGING_PREFIX}*"))


@pytest.fixture(scope="module")
def stalled(tmp_path_factory):
    """(process, source, data_dir, its staging folder) of a cifar10 preparation stalled mid-way."""
    root = tmp_path_factory.mktemp("stalled")
    source = write_zip(root / "c.zip", class_folder_entries(SMALL))
    data_dir, marker = root / "data", root / "stalled"
    with open(root / "log", "w") as log:
        process = subprocess.Popen([sys.executable, "-c", STALLING_PREPARATION, str(source), str(data_dir),
                                    str(marker)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert process.poll() is None and time.monotonic() < deadline, (root / "log").read_text()
        time.sleep(0.1)
    [staging] = staging_folders(data_dir)
    yield process, source, data_dir, staging
    process.kill()
    process.wait()


def test_a_live_preparations_staging_is_not_removed_by_a_concurrent_one(stalled, tmp_path):
    process, _, data_dir, staging = stalled
    assert process.poll() is None and is_locked(staging)
    idx_fixture(tmp_path / "idx")
    assert run("fashion_mnist", tmp_path / "idx", data_dir, check=False) == 0
    assert staging_folders(data_dir) == [staging] and is_locked(staging)
    assert (data_dir / "fashion_mnist" / "3.0.1").is_dir()


def test_a_killed_preparations_staging_is_removed_by_the_next_one(stalled, capsys):
    process, source, data_dir, staging = stalled
    assert list(staging.rglob("cifar10-train.tfrecord*"))  # Half-written: train shards, no test.
    process.kill()  # SIGKILL: no cleanup code runs.
    process.wait()
    assert staging.is_dir() and not is_locked(staging)
    assert run("cifar10", source, data_dir, check=False) == 0
    assert f"removed {staging} (" in capsys.readouterr().out
    assert staging_folders(data_dir) == []
    assert len(read_split(data_dir, "cifar10", "train")) == 20


def assert_one_error_line(capsys, *fragments):
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("prepare cifar10: error: "), lines
    for fragment in fragments:
        assert fragment in lines[0]


def test_a_data_dir_under_a_regular_file_is_one_line(tmp_path, capsys):
    source = write_zip(tmp_path / "c.zip", class_folder_entries(SMALL))
    (tmp_path / "file").write_text("not a folder")
    assert run("cifar10", source, tmp_path / "file" / "data", check=False) == 2
    assert_one_error_line(capsys, f"cannot write into data_dir {tmp_path / 'file' / 'data'}: Not a directory")


def test_a_read_only_data_dir_is_one_line(tmp_path, capsys, monkeypatch):
    source = write_zip(tmp_path / "c.zip", class_folder_entries(SMALL))
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    data_dir.chmod(0o555)
    if os.geteuid() == 0:  # Root ignores permission bits: refuse as the kernel refuses others.
        real_mkdir = os.mkdir

        def mkdir(path, *args, **kwargs):
            if pathlib.Path(path).parent == data_dir:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
            return real_mkdir(path, *args, **kwargs)

        monkeypatch.setattr(os, "mkdir", mkdir)
    try:
        assert run("cifar10", source, data_dir, check=False) == 2
    finally:
        data_dir.chmod(0o755)
    assert_one_error_line(capsys, f"cannot write into data_dir {data_dir}: Permission denied")
    assert list(data_dir.iterdir()) == []


@pytest.mark.parametrize("name, content", [
    ("cifar-10-python.tar.gz", b"\x1f\x8b\x08 not really gzip"),
    ("cifar-10-python.tar", b"x" * 1024),
    ("cifar10.zip", b"PK\x03\x04 truncated"),
])
def test_a_malformed_archive_is_one_line(tmp_path, capsys, name, content):
    (tmp_path / name).write_bytes(content)
    assert run("cifar10", tmp_path / name, tmp_path / "data", check=False) == 2
    assert_one_error_line(capsys, f"{tmp_path / name}: corrupt or truncated")
    assert not (tmp_path / "data").exists() or list((tmp_path / "data").iterdir()) == []


def test_a_subset_is_refused_when_the_full_set_is_asked_for(tmp_path, capsys, monkeypatch):
    # The "full" set of this test: 2 train and 1 test image per class.
    monkeypatch.setitem(prepare_module.EXPECTED, "cifar10",
                        ExpectedCounts({"train": 20, "test": 10}, {"train": 2, "test": 1}))
    subset = write_zip(tmp_path / "subset.zip", class_folder_entries({"train": 1, "test": 1}))
    full = write_zip(tmp_path / "full.zip", class_folder_entries(SMALL))
    data_dir = tmp_path / "data"
    assert run("cifar10", subset, data_dir, check=False) == 0
    capsys.readouterr()
    assert run("cifar10", full, data_dir) == 2
    assert_one_error_line(capsys, "cifar10 at ", "is not what was asked for: it was prepared from "
                          f"{subset} (sha256 ", f"not from {full} (sha256 ",
                          "it was prepared with --nocheck_counts and is not the full set: split 'train' has 10 "
                          "examples, expected 20", f"nothing was changed; pass --overwrite to rebuild it from {full}")
    assert len(read_split(data_dir, "cifar10", "train")) == 10
    assert run("cifar10", full, data_dir, overwrite=True) == 0
    assert run("cifar10", full, data_dir) == 0
    assert "cifar10 is already prepared at" in capsys.readouterr().out
    assert len(read_split(data_dir, "cifar10", "train")) == 20


def test_nocheck_counts_with_nine_of_ten_classes_warns(tmp_path, capsys):
    source = write_zip(tmp_path / "c.zip", class_folder_entries(SMALL, classes=CLASSES[:9]))
    assert run("cifar10", source, tmp_path / "data", check=False) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("WARNING")]
    assert warnings == [f"WARNING: cifar10 from {source}: split '{split}' has 9 of 10 classes; missing: truck"
                        for split in ("train", "test")]
