"""Generate a CIFAR-10-C-style test set in TFDS format from any prepared image dataset.

    prepare_corrupted(base_name, source_dir, data_dir, *, corruption_types=None,
                      severities=None, seed=0, num_workers=None, overwrite=False)

reads the ``test`` split of ``tfds.builder(base_name, data_dir=source_dir)`` (e.g. the
``cifar10`` or ``fashion_mnist`` written by ``prepare``), applies the 15 corruptions x 5
severities of ``corruptions.CORRUPTIONS`` and writes ``<base_name>_corrupted`` into
``data_dir`` with one TFDS config per ``<corruption_type>_<severity>`` (the config names
of TFDS's own ``cifar10_corrupted``), features ``{'image', 'label'}``, split ``test``.

For ``cifar10`` the writer subclasses TFDS's ``Cifar10Corrupted`` (same name, version and
features), so ``tfds.load('cifar10_corrupted/gaussian_noise_1', data_dir=DIR)`` then
works as if TFDS had downloaded CIFAR-10-C; any other base gets a builder of the same
structure that TFDS reads back from its files (``tfds.builder('fashion_mnist_corrupted',
config='fog_3', data_dir=DIR)``).

Corruption and PNG encoding run in ``num_workers`` spawned processes (default: one per
CPU), one task per config; the parent writes each config as it arrives and prints progress
with an ETA.
Image i of config (type, severity) is drawn from ``np.random.default_rng([seed, k, severity])``
(k: the type's index in ``CORRUPTIONS``) after images 0..i-1, so the output depends on the
seed only, not on the number of workers. Everything is written to a locked staging folder
inside ``data_dir`` and renamed into place at the end (see ``prepare``: on error nothing
half-written remains, and the next run removes the staging folder of a killed one).

Each config carries a ``ub_prepared.json`` record of the base test split it was generated
from (SHA-256 of its images and labels) and the seed: a config generated from another base
(e.g. a subset prepared earlier) or seed is not silently kept but refused, unless ``overwrite``.
"""
from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import pathlib
import shutil
import time
from collections import Counter
from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image
from tensorflow_datasets.image_classification.cifar10_corrupted import Cifar10Corrupted

from uncertainty_baselines.datasets.corruptions import CORRUPTIONS, SEVERITIES, check_corruption, corrupt_images
from uncertainty_baselines.datasets.prepare import (RECORD_FILE, ExpectedCounts, Request, keep_existing,
                                                    new_record, remove_stale_staging, staging_folder)
from uncertainty_baselines.runs.progress import Progress


class _EncodedTestSplit:
    """Builder mixin: the ``test`` split is the given (PNG bytes, label) pairs, nothing downloaded.

    Images arrive PNG-encoded (lossless) from the worker processes, so the writing process
    only copies bytes; TFDS stores the bytes of an Image feature as given.
    """
    url_infos = None  # no URL checksums to read (see local_builders._LocalImageBuilder)

    def __init__(self, *, examples: Sequence[tuple[bytes, int]], **kwargs):
        self._examples = examples
        super().__init__(**kwargs)

    def _split_generators(self, dl_manager):
        del dl_manager
        return {"test": self._generate_examples()}

    def _generate_examples(self) -> Iterator[tuple[int, dict]]:
        for i, (png, label) in enumerate(self._examples):
            yield i, {"image": png, "label": label}


class LocalCifar10Corrupted(_EncodedTestSplit, Cifar10Corrupted, skip_registration=True):
    """TFDS ``cifar10_corrupted`` (name, version, configs, features) written from local arrays."""

    name = "cifar10_corrupted"


class _LocalCorrupted(_EncodedTestSplit, tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """``<base>_corrupted`` for a base without a TFDS corrupted builder; subclass per base."""

    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=f"{t}_{s}", description=f"{t} at severity {s}")
                       for t in CORRUPTIONS for s in SEVERITIES]

    def __init__(self, *, features: tfds.features.FeaturesDict, **kwargs):
        self._features = features
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self, features=self._features, supervised_keys=("image", "label"),
            description=f"Test split of {self.name.removesuffix('_corrupted')} under the 15 "
                        "CIFAR-10-C corruptions x 5 severities, generated locally by "
                        "uncertainty_baselines.datasets.corrupted_builder.",
            homepage="https://github.com/hendrycks/robustness")


def _builder_class(base_name: str) -> type:
    if base_name == "cifar10":
        return LocalCifar10Corrupted
    return type(f"{base_name}_corrupted", (_LocalCorrupted,), {"name": f"{base_name}_corrupted"},
                skip_registration=True)


def load_base_test(base_name: str, source_dir: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, tfds.features.FeaturesDict]:
    """The base set's test images (uint8 NxHxWxC) and labels in file order, and the features
    a corrupted copy should have (the base's image shape and label names)."""
    try:
        builder = tfds.builder(base_name, data_dir=os.fspath(source_dir))
    except tfds.core.registered.DatasetNotFoundError:
        builder = None
    if builder is None or not builder.is_prepared():
        raise ValueError(
            f"{base_name} is not prepared in {source_dir}; run `python -m uncertainty_baselines.datasets."
            f"prepare {base_name} --source <files> --data_dir {source_dir}` first")
    features = builder.info.features
    if "image" not in features or "label" not in features or "test" not in builder.info.splits:
        raise ValueError(f"{base_name} needs features 'image' and 'label' and a 'test' split; it has "
                         f"features {list(features)} and splits {list(builder.info.splits)}")
    images, labels = [], []
    for example in tfds.as_numpy(builder.as_dataset(split="test", shuffle_files=False)):
        images.append(example["image"])
        labels.append(example["label"])
    corrupted_features = tfds.features.FeaturesDict({
        "image": tfds.features.Image(shape=features["image"].shape),
        "label": tfds.features.ClassLabel(names=features["label"].names)})
    return np.stack(images), np.asarray(labels, dtype=np.int64), corrupted_features


def _config_seed(seed: int, corruption_type: str, severity: int) -> list[int]:
    return [seed, list(CORRUPTIONS).index(corruption_type), severity]


def _corrupt_config(images: np.ndarray, corruption_type: str, severity: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(_config_seed(seed, corruption_type, severity))
    return corrupt_images(images, corruption_type, severity, rng)


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buffer, format="PNG")
    return buffer.getvalue()


def _corrupt_and_encode(images: np.ndarray, corruption_type: str, severity: int, seed: int) -> list[bytes]:
    return [_png(image) for image in _corrupt_config(images, corruption_type, severity, seed)]


_WORKER_IMAGES: np.ndarray | None = None  # the clean test images, set in each worker process


def _init_worker(images: np.ndarray) -> None:
    global _WORKER_IMAGES
    _WORKER_IMAGES = images


def _worker_task(task: tuple[str, int, int]) -> tuple[str, int, list[bytes]]:
    corruption_type, severity, seed = task
    return corruption_type, severity, _corrupt_and_encode(_WORKER_IMAGES, corruption_type, severity, seed)


def prepare_corrupted(base_name: str, source_dir: str | os.PathLike, data_dir: str | os.PathLike, *,
                      corruption_types: Sequence[str] | None = None,
                      severities: Sequence[int] | None = None, seed: int = 0,
                      num_workers: int | None = None, overwrite: bool = False) -> pathlib.Path:
    """Write ``<base_name>_corrupted`` (one TFDS config per type and severity) into ``data_dir``.

    ``corruption_types`` / ``severities`` default to all 15 / 1..5. A config already generated
    from the same base test split and seed is kept (and reported); one generated from another
    raises ``PreparedMismatchError`` unless ``overwrite``. Returns ``data_dir/<base_name>_corrupted``.
    """
    types = list(CORRUPTIONS) if corruption_types is None else list(corruption_types)
    levels = list(SEVERITIES) if severities is None else list(severities)
    if not types or not levels:
        raise ValueError(f"need at least one corruption type and one severity, got {types} and {levels}")
    for corruption_type in types:
        for severity in levels:
            check_corruption(corruption_type, severity)
    workers = (os.cpu_count() or 1) if num_workers is None else num_workers
    if workers < 1:
        raise ValueError(f"num_workers must be >= 1, got {num_workers}")

    builder_cls = _builder_class(base_name)
    data_dir = pathlib.Path(data_dir)
    target_root, version = data_dir / builder_cls.name, str(builder_cls.VERSION)
    remove_stale_staging(data_dir)
    images, labels, features = load_base_test(base_name, source_dir)
    fingerprint = base_test_fingerprint(base_name, images, labels)
    label_names = features["label"].names
    counts = {"test": Counter(label_names[label] for label in labels.tolist())}
    requests, tasks = {}, []
    for corruption_type in dict.fromkeys(types):
        for severity in dict.fromkeys(levels):
            config = f"{corruption_type}_{severity}"
            # Counts are "checked" by construction: one image per image of the base test split.
            requests[config] = Request(f"{builder_cls.name}/{config}", pathlib.Path(source_dir), fingerprint,
                                       True, ExpectedCounts({"test": len(images)}), {"seed": seed})
            existing = target_root / config / version
            if existing.exists() and not overwrite:
                keep_existing(existing, requests[config])
            else:
                tasks.append((corruption_type, severity, seed))
    if not tasks:
        return target_root

    tfds.disable_progress_bar()  # one bar per config would drown the progress lines below
    extra = {} if base_name == "cifar10" else {"features": features}
    progress = Progress(len(tasks) * len(images), unit="image")
    start = time.monotonic()
    with staging_folder(data_dir, builder_cls.name) as staging:
        for done, (corruption_type, severity, encoded) in enumerate(
                _corrupted_configs(images, tasks, workers), start=1):
            config = f"{corruption_type}_{severity}"
            builder = builder_cls(data_dir=os.fspath(staging), config=config,
                                  examples=list(zip(encoded, labels.tolist())), **extra)
            builder.download_and_prepare(
                download_dir=os.fspath(staging / "downloads"),
                download_config=tfds.download.DownloadConfig(try_download_gcs=False))
            built = staging / builder_cls.name / config / version
            (built / RECORD_FILE).write_text(json.dumps(new_record(requests[config], counts), indent=1) + "\n")
            line = progress.line(done * len(images), time.monotonic() - start, {})
            print(f"{builder_cls.name}/{config} written ({done}/{len(tasks)} configs); {line}", flush=True)
        for corruption_type, severity, _ in tasks:
            target = target_root / f"{corruption_type}_{severity}" / version
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                os.replace(target, staging / "previous")
                shutil.rmtree(staging / "previous")
            os.replace(staging / builder_cls.name / f"{corruption_type}_{severity}" / version, target)
    return target_root


def base_test_fingerprint(base_name: str, images: np.ndarray, labels: np.ndarray) -> dict[str, object]:
    """What identifies the base test split a corrupted set is generated from: its name, size
    and the SHA-256 of its images (shape included) and labels."""
    digest = hashlib.sha256(repr(images.shape).encode())
    digest.update(np.ascontiguousarray(images).tobytes())
    digest.update(labels.astype("<i8").tobytes())
    return {"base": base_name, "test_examples": len(images), "sha256": digest.hexdigest()}


def _corrupted_configs(images: np.ndarray, tasks: list[tuple[str, int, int]],
                       workers: int) -> Iterator[tuple[str, int, list[bytes]]]:
    """Yield (type, severity, PNG-encoded corrupted images) per task, in completion order."""
    if workers == 1:
        for corruption_type, severity, seed in tasks:
            yield corruption_type, severity, _corrupt_and_encode(images, corruption_type, severity, seed)
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(min(workers, len(tasks)), initializer=_init_worker, initargs=(images,)) as pool:
        yield from pool.imap_unordered(_worker_task, tasks)
