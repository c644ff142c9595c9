"""Release bundles (runs/bundle.py): round trip as folder and archive, and every kind of bad
bundle refused with a message naming the file."""
import io
import json
import shutil
import tarfile

import numpy as np
import pytest

from uncertainty_baselines.runs import bundle

WEIGHTS = {"00000:dense/kernel": np.arange(6, dtype=np.float32).reshape(2, 3),
           "00001:dense/bias": np.array([0.5, -1.0, 2.0], np.float32)}
SPEC = {"name": "mlp", "kwargs": {"num_classes": 3}}


def write(out, **overrides):
    args = dict(weights=WEIGHTS, spec=SPEC, record={"seed": 1, "model": SPEC}, card="# card\n")
    return bundle.write(out, **{**args, **overrides})


@pytest.mark.parametrize("name", ["b", "b.tar.gz", "b.tgz"])
def test_round_trip(tmp_path, name):
    path = write(tmp_path / name, warnings=["dirty"])
    assert bundle.is_bundle(path)
    got = bundle.read(path)
    assert got.spec == SPEC and got.record["seed"] == 1 and got.card == "# card\n" and got.warnings == ["dirty"]
    assert list(got.weights) == list(WEIGHTS)
    for key, value in WEIGHTS.items():
        np.testing.assert_array_equal(got.weights[key], value)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # No temporaries left.


def test_archive_is_reproducible_and_never_overwritten(tmp_path):
    first, second = write(tmp_path / "a.tar.gz"), write(tmp_path / "b" / "a.tar.gz")
    assert first.read_bytes() == second.read_bytes()
    with pytest.raises(FileExistsError, match="never overwritten"):
        write(first)


@pytest.mark.parametrize("damage,message", [
    (lambda p: (p / "weights.npz").unlink(), "weights.npz is missing"),
    (lambda p: (p / "README.md").write_text("# another card\n"), "README.md has sha256"),
    (lambda p: (p / "extra.py").write_text("import os\n"), r"unknown file\(s\) \['extra.py'\]"),
    (lambda p: (p / "MANIFEST.json").unlink(), "no MANIFEST.json"),
    (lambda p: (p / "MANIFEST.json").write_text("{not json"), "MANIFEST.json is unreadable"),
    (lambda p: (p / "sub").mkdir(), r"\['sub'\] are not regular files"),
])
def test_damaged_folder_refused(tmp_path, damage, message):
    path = write(tmp_path / "b")
    damage(path)
    with pytest.raises(bundle.BundleError, match=message):
        bundle.read(path)


def test_one_changed_byte_in_the_weights_is_refused(tmp_path):
    path = write(tmp_path / "b")
    data = bytearray((path / "weights.npz").read_bytes())
    data[len(data) // 2] ^= 0x01
    (path / "weights.npz").write_bytes(bytes(data))
    with pytest.raises(bundle.BundleError, match="weights.npz has sha256"):
        bundle.read(path)


def test_manifest_must_list_exactly_the_bundle_files(tmp_path):
    path = write(tmp_path / "b")
    manifest = json.loads((path / "MANIFEST.json").read_text())
    del manifest["files"]["run.json"]
    (path / "MANIFEST.json").write_text(json.dumps(manifest))
    with pytest.raises(bundle.BundleError, match="MANIFEST.json lists"):
        bundle.read(path)


def tar_with(path, entries):
    """A .tar.gz of (TarInfo, bytes | None) entries."""
    with tarfile.open(path, "w:gz") as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def file_entry(name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


@pytest.mark.parametrize("kind", ["symlink", "dotdot", "absolute", "two_folders"])
def test_archive_with_anything_but_files_of_one_folder_refused(tmp_path, kind):
    good = write(tmp_path / "good")
    entries = [file_entry(f"b/{p.name}", p.read_bytes()) for p in sorted(good.iterdir())]
    if kind == "symlink":
        link = tarfile.TarInfo("b/evil")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        entries.append((link, None))
    elif kind == "dotdot":
        entries.append(file_entry("b/../evil", b"x"))
    elif kind == "absolute":
        entries.append(file_entry("/tmp/evil", b"x"))
    else:
        entries.append(file_entry("c/README.md", b"x"))
    path = tar_with(tmp_path / "bad.tar.gz", entries)
    with pytest.raises(bundle.BundleError, match="archive entry"):
        bundle.read(path)
    assert not (tmp_path / "evil").exists()


def test_truncated_archive_refused(tmp_path):
    path = write(tmp_path / "b.tar.gz")
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(bundle.BundleError, match="unreadable archive|sha256"):
        bundle.read(path)


def test_archive_with_extra_file_refused(tmp_path):
    folder = write(tmp_path / "b")
    shutil.copy(folder / "README.md", folder / "notes.txt")
    entries = [file_entry(f"b/{p.name}", p.read_bytes()) for p in sorted(folder.iterdir())]
    with pytest.raises(bundle.BundleError, match="notes.txt"):
        bundle.read(tar_with(tmp_path / "b.tar.gz", entries))
