"""Look at a prepared dataset before training on it.

    python -m uncertainty_baselines.datasets.overview NAME --data_dir DIR [--out FILE]

Prints per-split counts, per-class counts, value ranges and the exact duplicates between
train and test (by SHA-1 of the stored pixels or text). For image sets `--out` (default
NAME.png) receives a PNG grid with `--per_class` examples of every class; for text sets a
table of examples is printed (and written to `--out` when given); for the UCI tabular sets
summary statistics of the features and target of split 0 are printed.
"""
from __future__ import annotations

import dataclasses
import hashlib
import pathlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from absl import app, flags

_UCI_PREFIX = "uci_"


@dataclasses.dataclass
class SplitSummary:
    """What one pass over a split found: counts, value range, and example hashes."""
    count: int = 0
    class_counts: Counter = dataclasses.field(default_factory=Counter)
    value_min: float = np.inf
    value_max: float = -np.inf
    value_sum: np.ndarray | float = 0.0  # Per channel (last axis) of the values.
    value_count: int = 0  # Values summed per channel.
    hashes: dict[bytes, int] = dataclasses.field(default_factory=dict)  # digest -> first index
    within_duplicates: int = 0

    def add(self, values: np.ndarray, labels: np.ndarray, keys: Sequence[bytes]) -> None:
        """Add a batch: `values` [N, ..., C] numeric, `labels` [N], `keys` the bytes to hash."""
        self.class_counts.update(int(y) for y in labels)
        if len(values):
            flat = values.reshape(-1, values.shape[-1]).astype(np.float64)
            self.value_min = min(self.value_min, float(flat.min()))
            self.value_max = max(self.value_max, float(flat.max()))
            self.value_sum = self.value_sum + flat.sum(0)
            self.value_count += len(flat)
        for key in keys:
            digest = hashlib.sha1(key).digest()
            if digest in self.hashes:
                self.within_duplicates += 1
            else:
                self.hashes[digest] = self.count
            self.count += 1

    def value_mean(self) -> np.ndarray:
        """Mean value per channel."""
        return np.asarray(self.value_sum) / max(self.value_count, 1)


def cross_duplicates(a: SplitSummary, b: SplitSummary) -> list[tuple[int, int]]:
    """(index in a, index in b) of examples of b whose content also occurs in a."""
    return sorted((a.hashes[h], i) for h, i in b.hashes.items() if h in a.hashes)


def summarize_images(batches: Iterable[Mapping[str, np.ndarray]]) -> SplitSummary:
    """Summary of a split given as batches of {'image': uint8 [N, H, W, C], 'label': [N]}."""
    summary = SplitSummary()
    for batch in batches:
        images = batch["image"]
        summary.add(images, batch["label"], [image.tobytes() for image in images])
    return summary


def image_grid(examples: Mapping[str, Sequence[np.ndarray]], out: pathlib.Path) -> None:
    """Write a PNG with one row of examples per class, the class name on the left."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    per_class = max(len(v) for v in examples.values())
    fig, axes = plt.subplots(len(examples), per_class, squeeze=False,
                             figsize=(per_class * 0.9 + 1.2, len(examples) * 0.9))
    for row, (name, images) in enumerate(examples.items()):
        for col in range(per_class):
            ax = axes[row][col]
            ax.set_xticks([])
            ax.set_yticks([])
            if col < len(images):
                image = images[col]
                ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray",
                          vmin=0, vmax=255, interpolation="nearest")
            else:
                ax.axis("off")
        axes[row][0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def _format_class_counts(counts: Counter, names: Sequence[str], limit: int = 12) -> str:
    if len(counts) <= limit:
        return ", ".join(f"{names[k] if k < len(names) else k}={n:,}" for k, n in sorted(counts.items()))
    values = list(counts.values())
    return f"{len(counts)} classes, min {min(values):,}, max {max(values):,} per class"


def format_summaries(summaries: Mapping[str, SplitSummary], class_names: Sequence[str],
                     value_name: str) -> str:
    """Human-readable report of per-split counts, class counts, ranges and duplicates."""
    lines = []
    for split, s in summaries.items():
        mean = np.round(np.atleast_1d(s.value_mean()), 3).tolist()
        lines += [f"[{split}] {s.count:,} examples",
                  f"  per class: {_format_class_counts(s.class_counts, class_names)}",
                  f"  {value_name}: min {s.value_min:g}, max {s.value_max:g}, mean {mean}",
                  f"  exact duplicates within {split}: {s.within_duplicates:,}"]
    if "train" in summaries:
        for split, s in summaries.items():
            if split != "train":
                pairs = cross_duplicates(summaries["train"], s)
                shown = ", ".join(f"train#{i}=={split}#{j}" for i, j in pairs[:5])
                lines.append(f"exact duplicates train/{split}: {len(pairs):,}" + (f" ({shown}, ...)" if pairs else ""))
    return "\n".join(lines)


def _builder(name: str, data_dir: str | None):
    import tensorflow_datasets as tfds
    from uncertainty_baselines.datasets.base import DataNotFoundError, prepare_command
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        builder = None
    if builder is None or not builder.is_prepared():
        raise DataNotFoundError(f"{name} is not prepared in {data_dir}; run "
                                f"`{prepare_command(name, data_dir)}`")
    return builder


def overview_images(builder, out: pathlib.Path, per_class: int) -> str:
    """Report on a TFDS image set and write its grid of `per_class` train examples per class."""
    import tensorflow_datasets as tfds
    names = builder.info.features["label"].names
    summaries = {}
    for split in builder.info.splits:
        ds = builder.as_dataset(split=split, batch_size=1000, shuffle_files=False)
        summaries[split] = summarize_images(
            {"image": b["image"], "label": b["label"]} for b in tfds.as_numpy(ds))
    grid_split = "train" if "train" in builder.info.splits else next(iter(builder.info.splits))
    examples: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for example in tfds.as_numpy(builder.as_dataset(split=grid_split, shuffle_files=False)):
        bucket = examples[names[int(example["label"])]]
        if len(bucket) < per_class:
            bucket.append(example["image"])
        if all(len(v) >= per_class for v in examples.values()):
            break
    image_grid(examples, out)
    return format_summaries(summaries, names, "pixel values") + f"\ngrid of {grid_split} examples: {out}"


def overview_text(builder, rows: int) -> tuple[str, str]:
    """Report on a tokenised text set (clinc_intent) and a table of `rows` examples per split."""
    import tensorflow_datasets as tfds
    names = builder.info.features["label"].names
    summaries, table = {}, ["split\tlabel\tintent\ttokens\ttext"]
    for split in builder.info.splits:
        summary = SplitSummary()
        for batch in tfds.as_numpy(builder.as_dataset(split=split, batch_size=1000, shuffle_files=False)):
            lengths = batch["input_mask"].sum(axis=1)
            summary.add(lengths[:, None], batch["label"], list(batch["text"]))
        summaries[split] = summary
        for example in tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False).take(rows)):
            table.append(f"{split}\t{example['label']}\t{names[example['label']]}\t"
                         f"{example['input_mask'].sum()}\t{example['text'].decode()}")
    return format_summaries(summaries, names, "tokens per example"), "\n".join(table)


def overview_tabular(name: str, data_dir: str) -> str:
    """Summary statistics of a UCI set: every feature and the target, and split 0's sizes."""
    from uncertainty_baselines.datasets import uci
    x, y = uci.read_data(name, data_dir)
    settings = uci.read_settings(name, data_dir)
    split = uci.load_split(name, 0, data_dir)
    train = {row.tobytes() for row in split.x_train}
    overlap = sum(row.tobytes() in train for row in split.x_test)
    lines = [f"{name}: {len(x):,} rows, {x.shape[1]} features, {settings.n_splits} standard splits; "
             f"split 0: train {len(split.x_train):,}, test {len(split.x_test):,}",
             f"test rows of split 0 whose features also occur in train: {overlap}",
             "column      min          max          mean         std"]
    for i, column in enumerate([*x.T, y]):
        label = "target" if i == x.shape[1] else f"x{i}"
        lines.append(f"{label:<8}{column.min():>12.4g} {column.max():>12.4g} "
                     f"{column.mean():>12.4g} {column.std():>12.4g}")
    return "\n".join(lines)


def overview(name: str, data_dir: str, out: str | None = None, per_class: int = 10,
             rows: int = 5) -> str:
    """The overview of dataset `name` in `data_dir`; returns the report (and writes `out`)."""
    if name.startswith(_UCI_PREFIX):
        return overview_tabular(name, data_dir)
    builder = _builder(name, data_dir)
    if "image" in builder.info.features:
        return overview_images(builder, pathlib.Path(out or f"{name}.png"), per_class)
    if "text" in builder.info.features:
        report, table = overview_text(builder, rows)
        if out:
            pathlib.Path(out).write_text(table + "\n", encoding="utf-8")
        return f"{report}\nexamples:\n{table}"
    raise ValueError(f"{name}: no overview for features {sorted(builder.info.features)}; "
                     "expected 'image' or 'text' and 'label', or a uci_* name")


def _define_flags() -> None:
    """CLI flags, defined only when run as a script (importing never clashes with others)."""
    flags.DEFINE_string("data_dir", None, "The data_dir the dataset was prepared into.")
    flags.DEFINE_string("out", None, "Image sets: PNG grid path (default NAME.png). "
                        "Text sets: also write the example table here.")
    flags.DEFINE_integer("per_class", 10, "Examples per class in the image grid.")
    flags.DEFINE_integer("rows", 5, "Text sets: example rows per split in the table.")


def main(argv: Sequence[str]) -> None:
    args = flags.FLAGS
    if len(argv) != 2 or args.data_dir is None:
        raise app.UsageError("usage: python -m uncertainty_baselines.datasets.overview NAME "
                             "--data_dir DIR [--out FILE]")
    from uncertainty_baselines.datasets.base import DataNotFoundError
    try:
        print(overview(argv[1], args.data_dir, args.out, args.per_class, args.rows))
    except (ValueError, DataNotFoundError) as e:
        raise SystemExit(f"overview {argv[1]}: error: {e}") from None


if __name__ == "__main__":
    _define_flags()
    app.run(main)
