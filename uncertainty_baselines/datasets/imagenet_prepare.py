"""Offline preparation of ImageNet (ILSVRC-2012) and its robustness sets from the files users have.

    python -m uncertainty_baselines.datasets.prepare imagenet2012 --source DIR --data_dir OUT
    (and imagenet2012_corrupted, imagenet_a, imagenet_r, imagenet_v2)

writes the TFDS builders of the same names (TFDS's own name, version, configs, features
`image` (JPEG bytes), `label` (index into the 1,000 sorted wnids), `file_name` and split
names), so `tfds.load("imagenet2012", data_dir=OUT)` and `ub.datasets.get("imagenet2012", ...)`
read them as if TFDS had prepared them.

Sources (archives are plain tars or .tar.gz/.bz2/.xz; folders may hold symlinks):
  imagenet2012      a folder holding the training images as ILSVRC2012_img_train.tar (a tar
                    of per-class tars n01440764.tar, ...) or train/<wnid>/*.JPEG, and the
                    validation images as ILSVRC2012_img_val.tar or val/ (flat
                    ILSVRC2012_val_00000001.JPEG, ... or sorted into val/<wnid>/); Kaggle's
                    ILSVRC/Data/CLS-LOC/{train,val} works too. Flat validation images need
                    their labels, found in the folder (first match) or given by --val_labels:
                      ILSVRC2012_devkit_t12.tar.gz (or .tar, or its extracted folder): the
                        devkit's data/ILSVRC2012_validation_ground_truth.txt (ILSVRC2012_ID of
                        image i on line i) mapped to wnids by its data/meta.mat;
                      LOC_val_solution.csv (Kaggle: ImageId,PredictionString, wnid first);
                      --val_labels FILE also takes a text file of `<image file> <wnid>` lines.
  imagenet2012_corrupted   ImageNet-C: the released per-category archives (blur.tar,
                    digital.tar, noise.tar, weather.tar, extra.tar) and/or extracted folders,
                    laid out as <corruption>/<severity>/<wnid>/*.JPEG (224x224), in one folder
                    (or one archive); one TFDS config <corruption>_<severity> per folder
  imagenet_a, imagenet_r   imagenet-a.tar / imagenet-r.tar or their folders:
                    imagenet-{a,r}/<wnid>/*.jpg (200 of the 1,000 classes; labels stay 1,000-way)
  imagenet_v2       imagenetv2-matched-frequency.tar.gz or its folder:
                    imagenetv2-matched-frequency-format-val/<class index 0..999>/*.jpeg

Before anything is written every source is scanned (names and sizes only) and refused with one
line naming the file when: validation images have no labels (or one image has none), a class
folder is not one of the 1,000 wnids (or V2 indices), the class count is not the full set's
(1,000; 200 for ImageNet-A/-R; ImageNet-C: every config) unless a subset is asked for with
`--classes n01440764,...` or `--classes_file FILE` (one wnid a line), an archive is truncated
(no end-of-archive block, cut data or compressed stream), or, unless `--nocheck_counts`, the
example counts are not the full set's (train 1,281,167, validation 50,000 = 50 per class,
ImageNet-A 7,500, -R 30,000, -V2 10,000 = 10 per class, ImageNet-C 50,000 per config and all
15 benchmark corruptions x 5 severities). A subset keeps the 1,000-way labels.

Images are streamed: a plain tar is read member by member (header offsets, no extraction), a
compressed one sequentially, a folder file by file; TFDS's writer spills to disk beyond 1 GB.
JPEG bytes are stored as they are (only the header is parsed, to check the format); CMYK JPEGs
and non-JPEG files (ILSVRC-2012 has 22 CMYK images and one PNG named .JPEG) are re-encoded as
RGB JPEG (quality 95), as TFDS does. ImageNet-C images must be 224x224.

The preparation record's source fingerprint is deliberately cheap (a 150 GB source is not
re-read to decide whether it changed): SHA-256 over every file's relative name and size plus,
for files that are not images (archives, label files), a hash of their first and last MiB
(the whole file up to 2 MiB). It notices another or re-downloaded archive, a truncated copy,
added, removed or renamed images; it does not notice an edit that keeps a file's size in the
middle of an archive or inside an image file.
"""
from __future__ import annotations

import abc
import bz2
import contextlib
import csv
import dataclasses
import functools
import gzip
import hashlib
import io
import lzma
import os
import pathlib
import tarfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np

from uncertainty_baselines.datasets import prepare as prep
from uncertainty_baselines.datasets.local_builders import IMAGE_SUFFIXES, check_entry_name
from uncertainty_baselines.runs.progress import Progress

NAMES = prep.IMAGENET_NAMES
# Classes of the full sets (tests patch these to run the full-set checks on miniatures).
EXPECTED_CLASSES = {"imagenet2012": 1000, "imagenet2012_corrupted": 1000, "imagenet_a": 200,
                    "imagenet_r": 200, "imagenet_v2": 1000}
# Examples per split of the full sets, and per class where every class has the same number.
EXPECTED_EXAMPLES = {"imagenet2012": {"train": 1_281_167, "validation": 50_000},
                     "imagenet2012_corrupted": {"validation": 50_000},
                     "imagenet_a": {"test": 7_500}, "imagenet_r": {"test": 30_000},
                     "imagenet_v2": {"test": 10_000}}
PER_CLASS = {"imagenet2012": {"validation": 50}, "imagenet2012_corrupted": {"validation": 50},
             "imagenet_v2": {"test": 10}}
# TFDS's imagenet2012_corrupted configs: the 15 benchmark corruptions (required for the full
# set: the mean over them and mCE need all) and 4 extra ones (prepared when present).
BENCHMARK_CORRUPTIONS = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur",
                         "glass_blur", "motion_blur", "zoom_blur", "snow", "frost", "fog",
                         "brightness", "contrast", "elastic_transform", "pixelate",
                         "jpeg_compression")
EXTRA_CORRUPTIONS = ("gaussian_blur", "saturate", "spatter", "speckle_noise")
SEVERITIES = (1, 2, 3, 4, 5)
IMAGENET_C_SIZE = (224, 224)
V2_CONFIG = "matched-frequency"
_V2_OTHER_FOLDERS = {"imagenetv2-threshold0.7-format-val": "threshold-0.7",
                     "imagenetv2-top-images-format-val": "topimages"}

TRAIN_SOURCES = ("ILSVRC2012_img_train.tar", "train", "ILSVRC/Data/CLS-LOC/train")
VAL_SOURCES = ("ILSVRC2012_img_val.tar", "val", "ILSVRC/Data/CLS-LOC/val")
LABEL_SOURCES = ("ILSVRC2012_devkit_t12.tar.gz", "ILSVRC2012_devkit_t12.tar", "ILSVRC2012_devkit_t12",
                 "LOC_val_solution.csv")
_GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
_ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
_SAMPLE = 1 << 20  # Bytes hashed at each end of a file for the cheap fingerprint.
_JPEG_QUALITY = 95  # Re-encoding of CMYK / non-JPEG images.
_BLOCK = 512  # A tar block; an archive ends with (at least) one block of zeros.


@functools.lru_cache(maxsize=None)
def wnids() -> tuple[str, ...]:
    """The 1,000 ILSVRC-2012 wnids, sorted: label i of every TFDS ImageNet builder is wnid i."""
    import tempfile

    import tensorflow_datasets as tfds
    with tempfile.TemporaryDirectory() as empty:
        names = tuple(tfds.builder_cls("imagenet2012")(data_dir=empty).info.features["label"].names)
    assert len(names) == 1000 and list(names) == sorted(names), "TFDS's ImageNet labels changed"
    return names


@functools.lru_cache(maxsize=None)
def _wnid_index() -> dict[str, int]:
    return {wnid: i for i, wnid in enumerate(wnids())}


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def _stem(name: str) -> str:
    """'val/ILSVRC2012_val_00000001.JPEG' -> 'ILSVRC2012_val_00000001'."""
    base = name.rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[0] if "." in base else base


def _short(names: Sequence[str], limit: int = 10) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


# ----- sources: file trees and archives, read as (name, size) members -------------------------
@dataclasses.dataclass(frozen=True)
class Member:
    """A file of a source: its '/'-separated path inside the part, size and (plain tars) the
    offset of its header."""
    name: str
    size: int
    offset: int | None = None


class Part(abc.ABC):
    """A file tree or a tar archive whose files are read as `Member`s."""

    def __init__(self, path: pathlib.Path):
        self.path = path

    @abc.abstractmethod
    def where(self, name: str) -> str:
        """How an error names member `name`."""

    @abc.abstractmethod
    def members(self) -> Iterator[Member]:
        """Every file (hidden ones left out) without reading its data; an archive is checked
        to be complete."""

    @abc.abstractmethod
    def read(self, wanted: Callable[[str], bool], region: object = None) -> Iterator[tuple[Member, bytes]]:
        """The files whose name is `wanted`, with their bytes, in `members` order; `region`
        (grown by `grow_region` over those files) limits the reading to where they are."""

    @abc.abstractmethod
    def grow_region(self, region: object, member: Member) -> object:
        """`region` (None at first) extended to cover `member`."""


class FolderPart(Part):
    """A folder tree, walked in sorted order (symlinked folders followed)."""

    def where(self, name: str) -> str:
        return os.fspath(self.path / name)

    def _walk(self, under: Sequence[str] = ("",)) -> Iterator[tuple[pathlib.Path, str]]:
        def fail(error: OSError):
            raise ValueError(f"{error.filename}: cannot list folder ({error.strerror})")

        for sub in under:
            for dirpath, dirnames, filenames in os.walk(self.path / sub if sub else self.path, onerror=fail,
                                                        followlinks=True):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for filename in sorted(f for f in filenames if not f.startswith(".")):
                    path = pathlib.Path(dirpath, filename)
                    yield path, path.relative_to(self.path).as_posix()

    def members(self) -> Iterator[Member]:
        for path, name in self._walk():
            try:
                yield Member(name, path.stat().st_size)
            except OSError as e:
                raise ValueError(f"{path}: cannot read ({e.strerror})") from e

    def read(self, wanted, region=None):
        for path, name in self._walk(sorted(region) if region else ("",)):
            if wanted(name):
                try:
                    data = path.read_bytes()
                except OSError as e:
                    raise ValueError(f"{path}: cannot read ({e.strerror})") from e
                yield Member(name, len(data)), data

    def grow_region(self, region, member):
        """The set of folders holding the files (ImageNet-C: their <corruption>/<severity>)."""
        region = set() if region is None else region
        region.add(member.name.rsplit("/", 2)[0] if member.name.count("/") >= 2 else "")
        return region


_COMPRESSED = ((b"\x1f\x8b", lambda raw: gzip.GzipFile(fileobj=raw, mode="rb")),
               (b"BZh", bz2.BZ2File), (b"\xfd7zXZ\x00", lzma.LZMAFile))
_ARCHIVE_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError)


class TarPart(Part):
    """A tar archive, plain or compressed; a member `<x>.tar` (ILSVRC2012_img_train.tar's
    per-class tars) is read as the folder `<x>/`. A plain tar is read by seeking from header
    to header, a compressed one sequentially."""

    def where(self, name: str) -> str:
        return f"{self.path}: {name}"

    @contextlib.contextmanager
    def _open(self) -> Iterator[tuple[io.IOBase, bool]]:
        """The archive's (decompressed) bytes, and whether they are compressed."""
        try:
            raw = open(self.path, "rb")
        except OSError as e:
            raise ValueError(f"{self.path}: cannot read ({e.strerror})") from e
        with raw:
            head = raw.read(6)
            raw.seek(0)
            if head.startswith(b"PK\x03\x04"):
                raise ValueError(f"{self.path}: a zip archive; extract it (ImageNet sources are read "
                                 "from tar archives or folders)")
            opener = next((cls for magic, cls in _COMPRESSED if head.startswith(magic)), None)
            if opener is None:
                yield raw, False
            else:
                with opener(raw) as stream:
                    yield stream, True

    def _check_end(self, f: io.IOBase, offset: int, what: str) -> None:
        """A complete tar has a block of zeros after its last member (tarfile itself takes an
        archive cut at a member boundary, or inside a header, for a shorter complete one)."""
        f.seek(offset)
        block = f.read(_BLOCK)
        if len(block) < _BLOCK or any(block):
            raise ValueError(f"{what}: truncated archive: no end-of-archive block after the last "
                             f"member (at byte {offset:,}); download or copy it again")

    def _members(self, f: io.IOBase, start: int, stop: int | None,
                 wanted: Callable[[str], bool] | None) -> Iterator[tuple[Member, bytes | None]]:
        f.seek(start)
        tar = tarfile.open(fileobj=f, mode="r:")
        while (info := tar.next()) is not None:
            del tar.members[:]  # tarfile keeps every header otherwise (a million for ImageNet-C).
            if stop is not None and info.offset >= stop:
                return
            check_entry_name(self.path, info.name)
            if info.isdir():
                continue
            if not info.isfile():
                raise ValueError(f"{self.where(info.name)}: not a regular file (links are not supported)")
            if info.name.lower().endswith(".tar"):
                yield from self._inner(tar, info, wanted)
                continue
            member = Member(info.name, info.size, info.offset)
            if wanted is None:
                yield member, None
            elif wanted(member.name):
                yield member, tar.extractfile(info).read()
        if stop is None:
            self._check_end(f, tar.offset, str(self.path))

    def _inner(self, outer: tarfile.TarFile, info: tarfile.TarInfo,
               wanted: Callable[[str], bool] | None) -> Iterator[tuple[Member, bytes | None]]:
        prefix = info.name[:-len(".tar")]
        where = self.where(info.name)
        try:
            fileobj = outer.extractfile(info)
            tar = tarfile.open(fileobj=fileobj, mode="r:")
            while (inner := tar.next()) is not None:
                del tar.members[:]
                check_entry_name(where, inner.name)
                if inner.isdir():
                    continue
                if not inner.isfile():
                    raise ValueError(f"{where}: {inner.name}: not a regular file (links are not supported)")
                member = Member(f"{prefix}/{inner.name}", inner.size)
                if wanted is None:
                    yield member, None
                elif wanted(member.name):
                    yield member, tar.extractfile(inner).read()
            self._check_end(fileobj, tar.offset, where)
        except _ARCHIVE_ERRORS as e:
            raise ValueError(f"{where}: truncated or corrupt archive ({e})") from e

    def _iterate(self, start: int, stop: int | None, wanted) -> Iterator[tuple[Member, bytes | None]]:
        try:
            with self._open() as (f, compressed):
                yield from self._members(f, start, stop, wanted)
                if stop is None and compressed:
                    while f.read(_SAMPLE):  # A compressed stream must end with its trailer.
                        pass
        except _ARCHIVE_ERRORS as e:
            raise ValueError(f"{self.path}: truncated or corrupt archive ({e})") from e

    def members(self):
        for member, _ in self._iterate(0, None, None):
            yield member

    def read(self, wanted, region=None):
        start, stop = (region[0], region[1] + 1) if isinstance(region, tuple) else (0, None)
        yield from self._iterate(start, stop, wanted)

    def grow_region(self, region, member):
        """(first, last) header offset of the files; "all" for files in per-class tars."""
        if member.offset is None or region == "all":
            return "all"
        first, last = region or (member.offset, member.offset)
        return min(first, member.offset), max(last, member.offset)


def part_of(path: pathlib.Path) -> Part:
    """The Part reading `path`: a TarPart for a file, a FolderPart for a folder."""
    return FolderPart(path) if path.is_dir() else TarPart(path)


# ----- the cheap fingerprint ------------------------------------------------------------------
def sample_sha256(path: pathlib.Path) -> str:
    """SHA-256 of a file's size, first and last MiB (its whole content up to 2 MiB)."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        if size <= 2 * _SAMPLE:
            digest.update(f.read())
        else:
            digest.update(f.read(_SAMPLE))
            f.seek(size - _SAMPLE)
            digest.update(f.read(_SAMPLE))
    return digest.hexdigest()


FINGERPRINT_METHOD = "names and sizes of all files, first and last MiB of non-images"


class Fingerprint:
    """Accumulates the cheap fingerprint (see the module docstring) file by file."""

    def __init__(self):
        self._digest = hashlib.sha256()
        self.files = 0
        self.bytes = 0

    def add(self, name: str, size: int, path: pathlib.Path | None = None) -> None:
        """A file `name` of `size` bytes; `path` (a non-image file on disk) adds its sample hash."""
        sample = sample_sha256(path) if path is not None and not _is_image(name) else "-"
        self._digest.update(f"{size} {sample} {name}\n".encode())
        self.files += 1
        self.bytes += size

    def add_path(self, path: pathlib.Path, root: pathlib.Path) -> None:
        """A file or every file of a folder, named relative to `root` (by its name if outside)."""
        base = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
        if path.is_dir():
            for member in FolderPart(path).members():
                self.add(f"{base}/{member.name}", member.size, path / member.name)
        else:
            self.add(base, path.stat().st_size, path)

    def result(self) -> dict[str, object]:
        return {"sha256": self._digest.hexdigest(), "files": self.files, "bytes": self.bytes,
                "hashed": FINGERPRINT_METHOD}


def cheap_fingerprint(root: pathlib.Path, paths: Sequence[pathlib.Path]) -> dict[str, object]:
    fingerprint = Fingerprint()
    for path in paths:
        fingerprint.add_path(path, root)
    return fingerprint.result()


# ----- class subsets and validation labels --------------------------------------------------
def resolve_classes(classes: str | Sequence[str] | None = None,
                    classes_file: str | os.PathLike | None = None) -> tuple[str, ...] | None:
    """The wnids of an explicit class subset (sorted), or None for the full set."""
    if classes and classes_file:
        raise ValueError("pass --classes or --classes_file, not both")
    if classes_file:
        path = pathlib.Path(classes_file)
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"classes_file {path}: unreadable ({e})") from e
        names = [line.split()[0] for line in lines if line.strip() and not line.lstrip().startswith("#")]
        what = f"classes_file {path}"
    elif classes:
        names = [c.strip() for c in classes.split(",")] if isinstance(classes, str) else list(classes)
        names = [c for c in names if c]
        what = "--classes"
    else:
        return None
    unknown = [c for c in names if c not in _wnid_index()]
    if unknown:
        raise ValueError(f"{what}: {_short(unknown)} "
                         f"{'is not an ILSVRC-2012 wnid' if len(unknown) == 1 else 'are not ILSVRC-2012 wnids'} "
                         "(such as n01440764)")
    if not names:
        raise ValueError(f"{what}: no classes given")
    return tuple(sorted(set(names)))


def _subset_options(subset: tuple[str, ...] | None) -> dict[str, object]:
    if subset is None:
        return {}
    return {"classes": len(subset), "classes_sha256": hashlib.sha256(",".join(subset).encode()).hexdigest()}


def _check_wnid(wnid: str, where: str) -> None:
    if wnid not in _wnid_index():
        raise ValueError(f"{where}: {wnid!r} is not an ILSVRC-2012 wnid (such as n01440764)")


def _devkit_labels(ground_truth: bytes, meta: bytes, where: str) -> dict[str, str]:
    """{validation image stem: wnid} from the devkit's ground truth (ILSVRC2012_IDs) and meta.mat."""
    import scipy.io
    try:
        synsets = scipy.io.loadmat(io.BytesIO(meta))["synsets"].ravel()
        leaves = {}
        for synset in synsets:
            value = {k: np.asarray(synset[k]).ravel() for k in ("ILSVRC2012_ID", "WNID", "num_children")}
            if int(value["num_children"][0]) == 0:
                leaves[int(value["ILSVRC2012_ID"][0])] = str(value["WNID"][0])
    except (KeyError, ValueError, IndexError, TypeError, NotImplementedError) as e:
        raise ValueError(f"{where}: meta.mat is not the ILSVRC-2012 devkit's (no synsets with "
                         f"ILSVRC2012_ID, WNID, num_children: {e})") from e
    for wnid in leaves.values():
        _check_wnid(wnid, f"{where}: meta.mat")
    labels = {}
    for line_number, line in enumerate(ground_truth.decode("ascii", "replace").split(), start=1):
        if not line.isdigit() or int(line) not in leaves:
            raise ValueError(f"{where}: {_GROUND_TRUTH} line {line_number}: {line!r} is not an "
                             f"ILSVRC2012_ID of meta.mat's {len(leaves)} classes")
        labels[f"ILSVRC2012_val_{line_number:08d}"] = leaves[int(line)]
    return labels


def _devkit_files(path: pathlib.Path) -> tuple[bytes, bytes]:
    """The ground truth and meta.mat of a devkit archive or folder."""
    found: dict[str, bytes] = {}
    if path.is_dir():
        for name in (_GROUND_TRUTH, "meta.mat"):
            candidates = [path / "data" / name, path / name, path / "ILSVRC2012_devkit_t12" / "data" / name]
            hit = next((c for c in candidates if c.is_file()), None)
            if hit is not None:
                found[name] = hit.read_bytes()
    else:
        wanted = lambda n: n.rsplit("/", 1)[-1] in (_GROUND_TRUTH, "meta.mat")
        for member, data in TarPart(path).read(wanted):
            found[member.name.rsplit("/", 1)[-1]] = data
    missing = [n for n in (_GROUND_TRUTH, "meta.mat") if n not in found]
    if missing:
        raise ValueError(f"{path}: not an ILSVRC-2012 devkit: no data/{' or data/'.join(missing)}")
    return found[_GROUND_TRUTH], found["meta.mat"]


def read_val_labels(path: pathlib.Path) -> dict[str, str]:
    """{validation image stem: wnid} from a devkit (archive or folder), Kaggle's
    LOC_val_solution.csv or a text file of `<image file> <wnid>` lines."""
    path = pathlib.Path(path)
    if not path.exists():
        raise ValueError(f"validation labels {path} do not exist")
    if path.is_dir() or path.name.endswith(_ARCHIVE_SUFFIXES):
        return _devkit_labels(*_devkit_files(path), str(path))
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: unreadable validation labels ({e})") from e
    labels: dict[str, str] = {}
    if text.startswith("ImageId,PredictionString"):
        rows = ((i, row[0], row[1].split()[0] if len(row) > 1 and row[1].split() else "")
                for i, row in enumerate(csv.reader(io.StringIO(text)), start=1) if i > 1 and row)
    else:
        rows = ((i, *(line.split() + ["", ""])[:2]) for i, line in enumerate(text.splitlines(), start=1)
                if line.strip())
    for line_number, image, wnid in rows:
        if wnid.isdigit():
            raise ValueError(f"{path}: line {line_number}: label {wnid!r} is a class index; give wnids "
                             "(n01440764): indices are ordered differently by different sources")
        _check_wnid(wnid, f"{path}: line {line_number}")
        stem = _stem(image)
        if labels.setdefault(stem, wnid) != wnid:
            raise ValueError(f"{path}: line {line_number}: {image} is labelled both {labels[stem]} and {wnid}")
    if not labels:
        raise ValueError(f"{path}: no validation labels in it")
    return labels


# ----- layouts: member name -> class ----------------------------------------------------------
Labeller = Callable[[Member], "str | None"]  # a member's wnid; None: skipped (not a member of the set)


def _skipped(name: str) -> bool:
    """Files that are not part of a layout: non-images outside class folders (imagenet-a/README.txt,
    label files, the archives beside a folder tree)."""
    if _is_image(name):
        return False
    parent = name.split("/")[-2] if "/" in name else ""
    return parent not in _wnid_index() and not parent.isdigit()


def _class_folder(part: Part, layout: str) -> Labeller:
    """`.../<wnid>/<image>`."""
    def label(member: Member) -> str | None:
        if _skipped(member.name):
            return None
        parts = member.name.split("/")
        if len(parts) < 2 or not _is_image(parts[-1]):
            raise ValueError(f"{part.where(member.name)}: not {layout} (an image {'|'.join(IMAGE_SUFFIXES)} "
                             "in a class folder)")
        if parts[-2] not in _wnid_index():
            raise ValueError(f"{part.where(member.name)}: unknown class folder {parts[-2]!r}: not an "
                             "ILSVRC-2012 wnid (such as n01440764)")
        return parts[-2]
    return label


def _validation(part: Part, labels: Mapping[str, str] | None, labels_path: pathlib.Path | None) -> Labeller:
    """Flat `<image>` labelled by `labels`, or `<wnid>/<image>` (checked against `labels` if any)."""
    in_folder = _class_folder(part, "<image> or <wnid>/<image>")

    def label(member: Member) -> str | None:
        if _skipped(member.name):
            return None
        if "/" in member.name:
            wnid = in_folder(member)
            if labels is not None and labels.get(_stem(member.name), wnid) != wnid:
                raise ValueError(f"{part.where(member.name)}: in class folder {wnid} but labelled "
                                 f"{labels[_stem(member.name)]} by {labels_path}")
            return wnid
        if labels is None:
            raise ValueError(f"{part.path}: validation images without labels (e.g. {member.name}): put "
                             "the devkit ILSVRC2012_devkit_t12.tar.gz (or its folder) or Kaggle's "
                             "LOC_val_solution.csv beside it, or pass --val_labels FILE (also `<image> "
                             "<wnid>` lines)")
        if _stem(member.name) not in labels:
            raise ValueError(f"{part.where(member.name)}: validation image without a label in {labels_path}")
        return labels[_stem(member.name)]
    return label


def _v2(part: Part) -> Labeller:
    """`imagenetv2-matched-frequency-format-val/<class index>/<image>`."""
    def label(member: Member) -> str | None:
        if _skipped(member.name):
            return None
        parts = member.name.split("/")
        if len(parts) >= 3 and parts[-3] in _V2_OTHER_FOLDERS:
            raise ValueError(f"{part.where(member.name)}: ImageNet-V2 variant {_V2_OTHER_FOLDERS[parts[-3]]!r}; "
                             f"imagenet_v2 is prepared from the {V2_CONFIG} variant, the one the suite evaluates on")
        if len(parts) < 2 or not _is_image(parts[-1]):
            raise ValueError(f"{part.where(member.name)}: not <class index>/<image> (ImageNet-V2 layout)")
        if not (parts[-2].isdigit() and int(parts[-2]) < 1000 and str(int(parts[-2])) == parts[-2]):
            raise ValueError(f"{part.where(member.name)}: unknown class folder {parts[-2]!r}: ImageNet-V2's "
                             "are the class indices 0..999")
        return wnids()[int(parts[-2])]
    return label


def _corrupted(part: Part) -> Callable[[Member], tuple[str, str] | None]:
    """`.../<corruption>/<severity>/<wnid>/<image>` -> (config, wnid)."""
    known = BENCHMARK_CORRUPTIONS + EXTRA_CORRUPTIONS
    in_folder = _class_folder(part, "<corruption>/<severity>/<wnid>/<image>")

    def label(member: Member) -> tuple[str, str] | None:
        if _skipped(member.name):
            return None
        parts = member.name.split("/")
        if len(parts) < 4:
            raise ValueError(f"{part.where(member.name)}: not <corruption>/<severity>/<wnid>/<image> "
                             "(ImageNet-C layout)")
        corruption, severity = parts[-4], parts[-3]
        if corruption not in known:
            raise ValueError(f"{part.where(member.name)}: unknown corruption folder {corruption!r}; "
                             f"ImageNet-C's are {', '.join(known)}")
        if severity not in [str(s) for s in SEVERITIES]:
            raise ValueError(f"{part.where(member.name)}: unknown severity folder {severity!r}; severities are 1..5")
        return f"{corruption}_{severity}", in_folder(member)
    return label


# ----- scanning: counts and checks before anything is written ----------------------------------
@dataclasses.dataclass
class Scan:
    """What a source part holds for one split (or ImageNet-C config)."""
    part: Part
    counts: Counter  # wnid -> examples, only the kept classes
    found: set[str]  # every class with an example (kept or not)
    region: object = None  # where the kept examples are in `part` (ImageNet-C: a config's)


def _scan(part: Part, labeller: Labeller, keep: Callable[[str], bool]) -> Scan:
    scan = Scan(part, Counter(), set())
    for member in part.members():
        wnid = labeller(member)
        if wnid is None:
            continue
        scan.found.add(wnid)
        if keep(wnid):
            scan.counts[wnid] += 1
    return scan


def check_classes(what: str, found: set[str], name: str, subset: tuple[str, ...] | None,
                  every_listed: bool = True) -> list[str]:
    """The classes to prepare; ValueError if `found` is not the full set's class count (no
    subset) or lacks listed classes (`every_listed`) or all of them."""
    expected = EXPECTED_CLASSES[name]
    if subset is None:
        if len(found) != expected:
            missing = [w for w in wnids() if w not in found] if expected == len(wnids()) else []
            shown = f" (missing {_short(missing)})" if missing and len(missing) < len(wnids()) else ""
            raise ValueError(f"{what}: {len(found):,} classes, expected {expected:,}{shown}; pass "
                             "--classes or --classes_file to prepare a class subset")
        return sorted(found)
    kept = [w for w in subset if w in found]
    missing = [w for w in subset if w not in found]
    if (every_listed and missing) or not kept:
        raise ValueError(f"{what}: no images of {'any of ' if not kept else ''}the --classes "
                         f"{_short(missing)}")
    return kept


def _expected(name: str, splits: Sequence[str], classes: int, subset: bool) -> prep.ExpectedCounts:
    """The full set's counts, or for a subset what its classes must have (totals only where
    every class has the same number)."""
    per_class = {s: n for s, n in PER_CLASS.get(name, {}).items() if s in splits}
    if not subset:
        return prep.ExpectedCounts({s: EXPECTED_EXAMPLES[name][s] for s in splits}, per_class or None)
    return prep.ExpectedCounts({s: per_class[s] * classes if s in per_class else None for s in splits},
                               per_class or None)


# ----- writing --------------------------------------------------------------------------------
def jpeg_bytes(data: bytes, where: str, size: tuple[int, int] | None = None) -> bytes:
    """`data` if it is an RGB or greyscale JPEG (only the header is parsed), else re-encoded as
    RGB JPEG; ValueError naming `where` if it is no image or not `size` (width, height)."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(io.BytesIO(data)) as image:
            if size is not None and image.size != size:
                raise ValueError(f"{where}: image is {image.size[0]}x{image.size[1]}, expected "
                                 f"{size[0]}x{size[1]}")
            if image.format == "JPEG" and image.mode in ("RGB", "L"):
                return data
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, format="JPEG", quality=_JPEG_QUALITY)
            return buffer.getvalue()
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as e:
        raise ValueError(f"{where}: cannot decode image ({e})") from e


def _examples(what: str, scan: Scan, labeller: Callable[[Member], str | None], keep: Callable[[str], bool],
              file_name: Callable[[str], str], size: tuple[int, int] | None = None,
              region: object = None) -> Iterator[tuple[str, dict]]:
    """TFDS examples of the kept members of `scan.part` (checked to be the ones scanned)."""
    index = _wnid_index()
    total = sum(scan.counts.values())
    progress = Progress(total, unit="image", log_fn=lambda line: print(f"{what}: {line}", flush=True))
    seen: Counter = Counter()

    def wanted(name: str) -> bool:
        wnid = labeller(Member(name, 0))
        return wnid is not None and keep(wnid)

    done = 0
    for member, data in scan.part.read(wanted, region):
        wnid = labeller(member)
        seen[wnid] += 1
        done += 1
        yield member.name, {"image": jpeg_bytes(data, scan.part.where(member.name), size),
                            "label": index[wnid], "file_name": file_name(member.name)}
        progress.update(done)
    if seen != scan.counts:
        raise ValueError(f"{scan.part.path} changed while it was read: {done:,} images of {what}, "
                         f"{total:,} when it was scanned")
    progress.update(done, force=True)


@functools.lru_cache(maxsize=None)
def builder_class(name: str) -> type:
    """TFDS's builder `name` (same name, version, configs, features) with its examples given."""
    import tensorflow_datasets as tfds

    class Local(tfds.builder_cls(name), skip_registration=True):
        url_infos = None  # Nothing to download (see local_builders._LocalImageBuilder).

        def __init__(self, *, splits: Mapping[str, Callable[[], Iterator]], **kwargs):
            self._ub_splits = splits
            super().__init__(**kwargs)

        def _split_generators(self, dl_manager):
            del dl_manager
            return {split: make() for split, make in self._ub_splits.items()}

    Local.name = name
    Local.__name__ = Local.__qualname__ = f"Local_{name}"
    return Local


def _existing(data_dir: pathlib.Path, name: str, config: str | None = None) -> pathlib.Path:
    builder = builder_class(name)(data_dir=os.fspath(data_dir), config=config, splits={})
    return pathlib.Path(os.fspath(builder.data_path))


def _kept(name: str, data_dir: pathlib.Path, request: prep.Request, overwrite: bool,
          config: str | None = None) -> pathlib.Path | None:
    existing = _existing(data_dir, name, config)
    if overwrite or not existing.exists():
        return None
    prep.keep_existing(existing, request)
    return existing


def _file_names(name: str) -> Callable[[str], str]:
    """TFDS's `file_name` of each set: the basename, or `<class folder>/<basename>`."""
    if name in ("imagenet_r", "imagenet_v2"):
        return lambda member: "/".join(member.split("/")[-2:])
    return lambda member: member.rsplit("/", 1)[-1]


# ----- the five sets ------------------------------------------------------------------------
def _one(source: pathlib.Path, candidates: Sequence[str], what: str) -> pathlib.Path | None:
    found = [source / c for c in candidates if (source / c).exists()]
    if len(found) > 1:
        raise ValueError(f"{source}: both {found[0].name} and {found[1].relative_to(source)} hold {what}; "
                         "keep one, or point --source at a folder with one")
    return found[0] if found else None


def prepare_imagenet2012(source: pathlib.Path, data_dir: pathlib.Path, *, check: bool = True,
                         overwrite: bool = False, subset: tuple[str, ...] | None = None,
                         val_labels: pathlib.Path | None = None) -> pathlib.Path:
    name = "imagenet2012"
    if not source.is_dir():
        raise ValueError(f"imagenet2012 source {source} must be a folder holding ILSVRC2012_img_train.tar "
                         "(or train/) and ILSVRC2012_img_val.tar (or val/) and the validation labels")
    train = _one(source, TRAIN_SOURCES, "the training images")
    val = _one(source, VAL_SOURCES, "the validation images")
    if val is None and train is None:
        raise ValueError(f"{source}: no ImageNet images: expected {' or '.join(TRAIN_SOURCES[:2])}/ and "
                         f"{' or '.join(VAL_SOURCES[:2])}/ (or Kaggle's ILSVRC/Data/CLS-LOC/)")
    for path, split, candidates in ((train, "train", TRAIN_SOURCES), (val, "validation", VAL_SOURCES)):
        if path is None and check:
            raise ValueError(f"{source}: no {split} images ({candidates[0]} or {candidates[1]}/); pass "
                             "--nocheck_counts to prepare the other split alone")
    labels_path = pathlib.Path(val_labels) if val_labels else _one(source, LABEL_SOURCES, "validation labels")
    if labels_path is not None and not labels_path.exists():
        raise ValueError(f"validation labels {labels_path} do not exist")
    parts = {split: part_of(path) for split, path in (("train", train), ("validation", val)) if path is not None}
    fingerprint = cheap_fingerprint(source, [p.path for p in parts.values()] + ([labels_path] if labels_path else []))
    request = prep.Request(name, source, fingerprint, check, _expected(name, list(parts), len(subset or ()),
                                                                       subset is not None),
                           _subset_options(subset))
    kept = _kept(name, data_dir, request, overwrite)
    if kept is not None:
        return kept

    keep = (lambda wnid: True) if subset is None else set(subset).__contains__
    labellers, scans = {}, {}
    if "validation" in parts:  # First: it is smaller, and a missing label is refused sooner.
        part = parts["validation"]
        labels = read_val_labels(labels_path) if labels_path is not None else None
        labellers["validation"] = _validation(part, labels, labels_path)
    if "train" in parts:
        labellers["train"] = _class_folder(parts["train"], "<wnid>/<image>")
    for split in labellers:  # Every file's layout and label first, then the classes.
        scans[split] = _scan(parts[split], labellers[split], keep)
    for split, scan in scans.items():
        check_classes(f"imagenet2012 {split} from {scan.part.path}", scan.found, name, subset)
    counts = {split: scan.counts for split, scan in scans.items()}
    if check:
        prep.check_counts(f"imagenet2012 from {source}", counts, request.expected)
    splits = {split: functools.partial(_examples, f"{name} {split}", scans[split], labellers[split], keep,
                                       _file_names(name)) for split in scans}
    return prep.build_atomically(builder_class(name), data_dir, overwrite, prep.new_record(request, counts),
                                 splits=splits)


def prepare_test_set(name: str, source: pathlib.Path, data_dir: pathlib.Path, *, check: bool = True,
                     overwrite: bool = False, subset: tuple[str, ...] | None = None) -> pathlib.Path:
    """ImageNet-A, -R or -V2 (split `test`) from its archive or folder."""
    config = V2_CONFIG if name == "imagenet_v2" else None
    part = part_of(source)
    fingerprint = cheap_fingerprint(source, [source])
    request = prep.Request(name, source, fingerprint, check, _expected(name, ["test"], len(subset or ()),
                                                                       subset is not None),
                           _subset_options(subset))
    kept = _kept(name, data_dir, request, overwrite, config)
    if kept is not None:
        return kept
    labeller = _v2(part) if name == "imagenet_v2" else _class_folder(part, "<wnid>/<image>")
    keep = (lambda wnid: True) if subset is None else set(subset).__contains__
    scan = _scan(part, labeller, keep)
    check_classes(f"{name} from {source}", scan.found, name, subset, every_listed=name == "imagenet_v2")
    counts = {"test": scan.counts}
    if check:
        prep.check_counts(f"{name} from {source}", counts, request.expected)
    make = functools.partial(_examples, name, scan, labeller, keep, _file_names(name))
    return prep.build_atomically(builder_class(name), data_dir, overwrite, prep.new_record(request, counts),
                                 splits={"test": make}, config=config)


def _corrupted_parts(source: pathlib.Path) -> list[Part]:
    if not source.is_dir():
        return [TarPart(source)]
    archives = sorted(p for p in source.iterdir() if p.is_file() and p.name.endswith(_ARCHIVE_SUFFIXES))
    return [TarPart(p) for p in archives] + [FolderPart(source)]


def prepare_corrupted(source: pathlib.Path, data_dir: pathlib.Path, *, check: bool = True,
                      overwrite: bool = False, subset: tuple[str, ...] | None = None) -> list[pathlib.Path]:
    """ImageNet-C: one TFDS config per <corruption>/<severity> folder of the source, each
    written (and kept on a rerun) on its own."""
    name = "imagenet2012_corrupted"
    keep = (lambda wnid: True) if subset is None else set(subset).__contains__
    scans: dict[str, Scan] = {}
    fingerprints: dict[str, Fingerprint | dict] = {}
    for part in _corrupted_parts(source):
        labeller = _corrupted(part)
        archive_fingerprint = cheap_fingerprint(part.path, [part.path]) if isinstance(part, TarPart) else None
        for member in part.members():
            labelled = labeller(member)
            if labelled is None:
                continue
            config, wnid = labelled
            scan = scans.get(config)
            if scan is None:
                scan = scans[config] = Scan(part, Counter(), set())
                fingerprints[config] = archive_fingerprint or Fingerprint()
            elif scan.part is not part:
                raise ValueError(f"{source}: ImageNet-C {config} is both in {scan.part.path} and in "
                                 f"{part.where(member.name)}; keep one")
            scan.found.add(wnid)
            if keep(wnid):
                scan.counts[wnid] += 1
                scan.region = part.grow_region(scan.region, member)
                if isinstance(fingerprints[config], Fingerprint):
                    fingerprints[config].add(member.name, member.size)
    if not scans:
        raise ValueError(f"{source}: no ImageNet-C images (<corruption>/<severity>/<wnid>/*.JPEG, in folders "
                         "or in the released blur/digital/noise/weather/extra.tar)")
    missing = [f"{c}_{s}" for c in BENCHMARK_CORRUPTIONS for s in SEVERITIES if f"{c}_{s}" not in scans]
    if check and missing:
        raise ValueError(f"imagenet2012_corrupted from {source}: missing {len(missing)} of the 75 benchmark "
                         f"configs ({_short(missing)}); pass --nocheck_counts to prepare the others")
    requests = {}
    for config in sorted(scans):
        scan = scans[config]
        check_classes(f"imagenet2012_corrupted {config} from {scan.part.path}", scan.found, name, subset)
        fingerprint = fingerprints[config]
        fingerprint = fingerprint.result() if isinstance(fingerprint, Fingerprint) else fingerprint
        requests[config] = prep.Request(f"{name}/{config}", scan.part.path, fingerprint, check,
                                        _expected(name, ["validation"], len(subset or ()), subset is not None),
                                        _subset_options(subset))
        if check:
            prep.check_counts(f"imagenet2012_corrupted {config} from {scan.part.path}",
                              {"validation": scan.counts}, requests[config].expected)
    todo = [config for config in sorted(scans)
            if _kept(name, data_dir, requests[config], overwrite, config) is None]
    for done, config in enumerate(todo, start=1):
        scan = scans[config]
        labelled = _corrupted(scan.part)

        def labeller(member: Member, config=config, labelled=labelled) -> str | None:
            found = labelled(member)
            return found[1] if found is not None and found[0] == config else None

        make = functools.partial(_examples, f"{name}/{config}", scan, labeller, keep, _file_names(name),
                                 IMAGENET_C_SIZE, scan.region)
        prep.build_atomically(builder_class(name), data_dir, overwrite,
                              prep.new_record(requests[config], {"validation": scan.counts}),
                              splits={"validation": make}, config=config)
        print(f"{name}/{config} written ({done}/{len(todo)} configs)", flush=True)
    return [data_dir / name]


def prepare(name: str, source: pathlib.Path, data_dir: pathlib.Path, *, check: bool = True,
            overwrite: bool = False, classes: str | Sequence[str] | None = None,
            classes_file: str | os.PathLike | None = None,
            val_labels: str | os.PathLike | None = None) -> list[pathlib.Path]:
    """Prepare ImageNet set `name` (one of NAMES) from `source` (see the module docstring)."""
    subset = resolve_classes(classes, classes_file)
    if val_labels is not None and name != "imagenet2012":
        raise ValueError("--val_labels is for imagenet2012 only")
    if name == "imagenet2012":
        return [prepare_imagenet2012(source, data_dir, check=check, overwrite=overwrite, subset=subset,
                                     val_labels=pathlib.Path(val_labels) if val_labels else None)]
    if name == "imagenet2012_corrupted":
        return prepare_corrupted(source, data_dir, check=check, overwrite=overwrite, subset=subset)
    return [prepare_test_set(name, source, data_dir, check=check, overwrite=overwrite, subset=subset)]
