"""Small, deterministic TFDS mocks for dataset tests (built on ``tfds.testing.mock_data``).

``tfds.testing.mock_data`` alone ignores split slicing and reports the real split sizes;
here each mocked builder gets metadata with the split sizes a test asks for, and example
``i`` of a split is a known function of ``i``, so tests can check ids, slicing and
preprocessing against hand-computed values.
"""
from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Mapping

import tensorflow as tf
import tensorflow_datasets as tfds

ExampleFn = Callable[[tf.Tensor], dict[str, tf.Tensor]]


def image_example_fn(shape: tuple[int, int, int], num_classes: int) -> ExampleFn:
    """Example i: every pixel of channel c equals (i + 7c) mod 256; label i mod num_classes."""

    def make(index: tf.Tensor) -> dict[str, tf.Tensor]:
        channel_values = (index + 7 * tf.range(shape[2], dtype=tf.int64)) % 256
        image = tf.broadcast_to(tf.cast(channel_values, tf.uint8), shape)
        return {"image": image, "label": index % num_classes}

    return make


def expected_pixel(index: int, channel: int) -> int:
    """The raw pixel value ``image_example_fn`` gives example ``index`` in ``channel``."""
    return (index + 7 * channel) % 256


def _write_metadata(data_dir: str, full_name: str, split_sizes: Mapping[str, int]) -> None:
    builder = tfds.builder(full_name, data_dir=data_dir)
    infos = []
    for split, size in split_sizes.items():
        template = tfds.core.ShardedFileTemplate(
            data_dir=builder.data_path, dataset_name=builder.name, split=split,
            filetype_suffix="tfrecord")
        infos.append(tfds.core.SplitInfo(name=split, shard_lengths=[size], num_bytes=0,
                                         filename_template=template))
    builder.info.set_splits(tfds.core.SplitDict(infos))
    builder.data_path.mkdir(parents=True, exist_ok=True)
    builder.info.write_to_directory(builder.data_dir)


def _slice(split: str, sizes: Mapping[str, int]) -> tuple[int, int]:
    match = re.fullmatch(r"(\w+)\[(\d*):(\d*)\]", split)
    if not match:
        return 0, sizes[split]
    name, start, stop = match.groups()
    return int(start or 0), int(stop) if stop else sizes[name]


@contextlib.contextmanager
def mock_tfds(data_dir: str,
              datasets: Mapping[str, tuple[Mapping[str, int], ExampleFn]]) -> Iterator[None]:
    """Within the context, TFDS builders named in ``datasets`` serve generated examples.

    Args:
      data_dir: an empty temporary folder for the metadata.
      datasets: full builder name (``name`` or ``name/config``) -> (split sizes, example
        fn). An example fn may return the image already encoded (a PNG string), as TFDS
        does when image decoding is skipped.
    """
    for full_name, (sizes, _) in datasets.items():
        _write_metadata(data_dir, full_name, sizes)
    by_builder = {full_name.split("/")[0]: spec for full_name, spec in datasets.items()}

    def as_dataset(self, split, decoders=None, read_config=None, **kwargs):
        del read_config, kwargs
        sizes, make = by_builder[self.name]
        start, stop = _slice(str(split), sizes)
        examples = tf.data.Dataset.range(start, stop).map(make)
        skip_decoding = decoders and isinstance(decoders.get("image"), tfds.decode.SkipDecoding)
        if skip_decoding and examples.element_spec["image"].dtype == tf.uint8:
            examples = examples.map(lambda ex: {**ex, "image": tf.io.encode_png(ex["image"])})
        return examples

    with tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_FILES, data_dir=data_dir,
                                as_dataset_fn=as_dataset):
        yield
