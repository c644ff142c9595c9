"""BaseDataset: one deterministic tf.data pipeline shared by every dataset of the suite.

A subclass says how to read its raw examples and how to preprocess one of them; the base
does everything else the same way for all datasets: split selection and the validation
carve-out, example ids, per-epoch shuffling, per-example augmentation seeds, sharding over
`tf.distribute` input pipelines, padding and masking of evaluation batches, batching and
prefetching.

Determinism and replica invariance (what holds):
  * Training streams are the concatenation of epochs; epoch ``e`` is the split shuffled
    with a seed derived from ``(seed, e)`` (a buffer of ``shuffle_buffer_size``), so the
    same seed gives the same order and every epoch is reshuffled.
  * Example ``id`` of epoch ``e`` gets the stateless augmentation seed derived from
    ``(seed, e, id)``: its augmentation does not depend on its position, on the batch
    size or on the number of replicas.
  * That global stream is sharded element-wise over input pipelines *after* shuffling
    (every pipeline shuffles with the same seed), so with a global batch ``B`` the union
    of the per-replica batches at step ``k`` is always stream elements ``[kB, (k+1)B)``:
    the examples and augmentations of each global step are identical for 1 or N
    replicas. Only the split of a global batch across replicas (hence per-replica batch
    statistics such as BatchNorm's) and floating-point summation order change. The
    shuffle seed is therefore deliberately *not* folded with the pipeline id: folding it
    would make the global batches depend on the device count. The price: every input
    pipeline reads the whole split (it decodes and augments only its own share).
  * Evaluation reads every example of the split exactly once, in order; each pipeline
    pads its share with ``id = -1, mask = 0`` examples so that all replicas see the same
    number of full batches, ``ceil(num_examples / global_batch)``.
"""
from __future__ import annotations

import abc
import math
import os
from collections.abc import Callable, Mapping
from typing import Any

import tensorflow as tf
import tensorflow_datasets as tfds

Example = dict[str, tf.Tensor]
PreprocessFn = Callable[[Example, "tf.Tensor | None"], Example]

SPLITS = ("train", "validation", "test")
# Default cap of the shuffle buffer (examples held in memory by each input pipeline).
MAX_DEFAULT_SHUFFLE_BUFFER = 50_000


class DataNotFoundError(FileNotFoundError):
    """A dataset is not present in the data directory and downloading was not requested."""


def resolve_data_dir(data_dir: str | None) -> str | None:
    """The data directory to use: the argument, else ``$UB_DATA_DIR``, else None (TFDS default)."""
    return data_dir or os.environ.get("UB_DATA_DIR") or None


def prepare_command(name: str, data_dir: str | None) -> str:
    """The offline preparation command that writes dataset ``name`` into ``data_dir``."""
    return (f"python -m uncertainty_baselines.datasets.prepare {name} --source PATH "
            f"--data_dir {data_dir or 'DIR'}")


class BaseDataset(abc.ABC):
    """A split of a dataset, loaded as batches of ``{'features', 'labels', 'id'[, 'mask']}``.

    Subclasses implement three methods:
      * ``_split_sizes()``: number of examples of each raw split (e.g. train/test);
      * ``_read(split, start, stop)``: raw examples ``[start, stop)`` of a raw split as a
        ``tf.data.Dataset`` of dicts, always in the same order;
      * ``_preprocess(example, seed)``: one raw example -> dict with ``features`` and
        ``labels`` (extra keys pass through). ``seed`` is a shape-[2] int64 tensor for
        stateless random ops on training splits, None on evaluation splits.
    """

    def __init__(
        self,
        *,
        name: str,
        num_classes: int,
        split: str,
        raw_splits: tuple[str, ...] = ("train", "test"),
        seed: int | None = None,
        is_training: bool | None = None,
        shuffle_buffer_size: int | None = None,
        validation_percent: float = 0.0,
        drop_remainder: bool = False,
        mask_and_pad: bool | None = None,
        cache: bool = False,
    ):
        """Validates the arguments; no data is read here.

        Args:
          name: registry name of the dataset (used in messages).
          num_classes: number of classes (0 for regression).
          split: 'train', 'validation' or 'test' (only those the dataset has).
          raw_splits: the splits the underlying data has. 'validation' is available when
            it is one of them, or carved off the end of train with validation_percent > 0.
          seed: seed of shuffling and augmentation; None draws one (see ``self.seed``).
          is_training: shuffle, repeat forever and augment; defaults to split == 'train'.
          shuffle_buffer_size: defaults to min(num_examples, 50,000).
          validation_percent: fraction in [0, 1) of train used as the validation split.
          drop_remainder: without mask_and_pad, drop the last partial evaluation batch.
          mask_and_pad: pad the last evaluation batch and add 'mask'; defaults to True
            when not training (an error when training).
          cache: keep examples in memory after the first pass: the raw ones when training
            (augmentation still differs every epoch), the preprocessed ones on evaluation
            (deterministic), so later evaluation passes skip reading and decoding.
        """
        if not 0.0 <= validation_percent < 1.0:
            raise ValueError(f"validation_percent must be in [0, 1), got {validation_percent}")
        valid = _valid_splits(raw_splits, validation_percent)
        if split not in valid:
            raise ValueError(f"{name}: unknown split {split!r}; valid splits: {sorted(valid)} "
                             "('validation' needs validation_percent > 0 when the data "
                             "has no validation split)")
        if shuffle_buffer_size is not None and shuffle_buffer_size < 1:
            raise ValueError(f"shuffle_buffer_size must be positive, got {shuffle_buffer_size}")
        self.name = name
        self.num_classes = num_classes
        self.split = split
        self.seed = int(seed) if seed is not None else int.from_bytes(os.urandom(4), "little")
        self.is_training = split == "train" if is_training is None else is_training
        self.validation_percent = validation_percent
        self.drop_remainder = drop_remainder
        self.mask_and_pad = (not self.is_training) if mask_and_pad is None else mask_and_pad
        if self.is_training and self.mask_and_pad:
            raise ValueError("mask_and_pad is for evaluation; training streams repeat forever "
                             "in full batches (pass is_training=False to evaluate train)")
        self.cache = cache
        self._shuffle_buffer_size = shuffle_buffer_size

    # ----- the subclassing surface -------------------------------------------------------
    @abc.abstractmethod
    def _split_sizes(self) -> Mapping[str, int]:
        """Number of examples in each raw split."""

    @abc.abstractmethod
    def _read(self, split: str, start: int, stop: int) -> tf.data.Dataset:
        """Raw examples [start, stop) of raw split ``split``, as dicts, in a fixed order."""

    @abc.abstractmethod
    def _preprocess(self, example: Example, seed: tf.Tensor | None) -> Example:
        """One raw example -> {'features', 'labels', ...}; seed is None on evaluation."""

    # ----- split selection ---------------------------------------------------------------
    def _range(self) -> tuple[str, int, int]:
        """(raw split, start, stop) of the selected split after the validation carve-out."""
        sizes = self._split_sizes()
        needed = "train" if self.split != "test" and self.validation_percent > 0.0 else self.split
        if needed not in sizes:
            raise ValueError(f"{self.name}: the data has splits {sorted(sizes)}, not "
                             f"{needed!r}; re-prepare it with all splits")
        if self.split == "validation" and self.validation_percent == 0.0:
            return "validation", 0, sizes["validation"]
        if self.split in ("train", "validation") and self.validation_percent > 0.0:
            num_train = sizes["train"]
            num_validation = int(num_train * self.validation_percent)
            if self.split == "train":
                return "train", 0, num_train - num_validation
            if num_validation == 0:
                raise ValueError(f"{self.name}: validation_percent={self.validation_percent} of "
                                 f"{num_train} training examples is an empty validation split; "
                                 "use a larger validation_percent")
            return "train", num_train - num_validation, num_train
        return self.split, 0, sizes[self.split]

    @property
    def num_examples(self) -> int:
        """Number of examples of the selected split (after the validation carve-out)."""
        _, start, stop = self._range()
        return stop - start

    @property
    def shuffle_buffer_size(self) -> int:
        """Examples each training pipeline shuffles over (default min(num_examples, 50,000))."""
        if self._shuffle_buffer_size is not None:
            return self._shuffle_buffer_size
        return max(1, min(self.num_examples, MAX_DEFAULT_SHUFFLE_BUFFER))

    # ----- loading -----------------------------------------------------------------------
    def load(
        self,
        *,
        preprocess_fn: PreprocessFn | None = None,
        batch_size: int,
        strategy: tf.distribute.Strategy | None = None,
    ) -> tf.data.Dataset | tf.distribute.DistributedDataset:
        """Batched examples of the split.

        Args:
          preprocess_fn: replaces the dataset's own preprocessing; called as
            ``preprocess_fn(example, seed)`` with the same contract as ``_preprocess``.
          batch_size: the GLOBAL batch size (summed over replicas).
          strategy: a tf.distribute strategy; then per-replica pipelines are built with
            ``distribute_datasets_from_function`` and per-replica batch = batch_size /
            replicas.
        Returns:
          A tf.data.Dataset, or a distributed dataset when a strategy is given (a strategy of
          one CPU device also gets the plain dataset: see `_one_cpu_device`). Training
          streams repeat forever (``num_examples // batch_size`` steps make an epoch).
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if self.is_training and self.num_examples == 0:
            raise ValueError(f"{self.name} split {self.split!r} has no examples to train on "
                             f"(validation_percent={self.validation_percent})")
        preprocess = preprocess_fn or self._preprocess
        if strategy is None or _one_cpu_device(strategy):
            return self._pipeline(preprocess, batch_size, pipeline_id=0, num_pipelines=1,
                                  replicas_per_pipeline=1)
        replicas = strategy.num_replicas_in_sync
        if batch_size % replicas:
            raise ValueError(f"global batch_size {batch_size} is not divisible by the "
                             f"{replicas} replicas of the strategy")

        def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
            return self._pipeline(
                preprocess, context.get_per_replica_batch_size(batch_size),
                pipeline_id=context.input_pipeline_id,
                num_pipelines=context.num_input_pipelines,
                replicas_per_pipeline=replicas // context.num_input_pipelines)

        return strategy.distribute_datasets_from_function(dataset_fn)

    def _pipeline(self, preprocess: PreprocessFn, per_replica_batch: int, *, pipeline_id: int,
                  num_pipelines: int, replicas_per_pipeline: int) -> tf.data.Dataset:
        """The input pipeline of one tf.distribute input pipeline (or the only one)."""
        raw_split, start, stop = self._range()
        examples = self._read(raw_split, start, stop).enumerate()  # (id, example)
        process = _processor(preprocess, self.is_training, self.mask_and_pad)
        if self.is_training:
            if self.cache:
                examples = examples.cache()
            dataset = _epochs(examples, self.seed, self.shuffle_buffer_size)
            dataset = dataset.shard(num_pipelines, pipeline_id).map(
                process, num_parallel_calls=parallel_calls(), deterministic=True)
            dataset = dataset.batch(per_replica_batch, drop_remainder=True)
            return _finish(dataset)
        dataset = examples.shard(num_pipelines, pipeline_id).map(
            process, num_parallel_calls=parallel_calls(), deterministic=True)
        if self.cache:  # Evaluation preprocessing is deterministic: keep its output.
            dataset = dataset.cache()
        if self.mask_and_pad:
            num_steps = math.ceil((stop - start) / (per_replica_batch * replicas_per_pipeline
                                                    * num_pipelines))
            own = _shard_size(stop - start, num_pipelines, pipeline_id)
            padding = num_steps * per_replica_batch * replicas_per_pipeline - own
            dataset = dataset.concatenate(_padding(dataset.element_spec, padding))
            dataset = dataset.batch(per_replica_batch, drop_remainder=True)
        else:
            dataset = dataset.batch(per_replica_batch, drop_remainder=self.drop_remainder)
        return _finish(dataset)


def _finish(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Deterministic element order, and batches prepared ahead of the consumer.

    tf.data's autotuning model is off: deleting an iterator joins the model's optimisation
    thread, which TF 2.21 leaves in its timed wait (periods doubling up to 60 s), so deleting the
    training iterator ended short runs here with a 13-54 s wait in 3 of 6 runs (gdb: the main
    thread in ~RootDataset::Iterator, the model thread in Model::OptimizeLoop). With it off here,
    2 of 14 runs still waited (13 s, 55 s): tf.distribute's per-device dataset is a second root
    whose autotuning no option reaches (one CPU device skips it: `_one_cpu_device`). The maps
    run on every core (`parallel_calls`), and prefetch still sizes its own buffer.
    """
    options = tf.data.Options()
    options.deterministic = True
    options.autotune.enabled = False
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


def _one_cpu_device(strategy: tf.distribute.Strategy) -> bool:
    """Whether `strategy` is one CPU device, where `strategy.run` takes the plain dataset's
    batches as they are. A distributed dataset would add tf.distribute's per-device dataset,
    whose tf.data autotuning no option turns off (see `_finish`): the runs that still waited
    13-55 s at their end with it (2 of 14) waited at most 0.01 s in 8 of 8 without it, and
    gave the same metrics and data fingerprint."""
    return isinstance(strategy, tf.distribute.OneDeviceStrategy) and all(
        "CPU" in device.upper() for device in strategy.extended.worker_devices)


def parallel_calls() -> int:
    """Parallel preprocessing calls of a pipeline: the cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _valid_splits(raw_splits: tuple[str, ...], validation_percent: float) -> set[str]:
    valid = set(raw_splits) & set(SPLITS)
    if "train" in raw_splits and validation_percent > 0.0:
        valid.add("validation")
    return valid


def _epoch_seeds(seed: int, epoch: tf.Tensor) -> tf.Tensor:
    """[shuffle seed, augmentation key] of an epoch, a stateless function of (seed, epoch)."""
    key = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
    return tf.random.stateless_uniform([2], seed=key, minval=None, maxval=None, dtype=tf.int64)


_MAX_INT32 = 2**31 - 1
_SEED_ZERO_STAND_IN = 0x5EED  # The graph seed used for dataset seeds that are 0 modulo 2**31 - 1.


def _epochs(examples: tf.data.Dataset, seed: int, buffer_size: int) -> tf.data.Dataset:
    """Endless stream of epochs, each shuffled with its own seed; examples carry their
    epoch's augmentation key."""

    def one_epoch(epoch: tf.Tensor) -> tf.data.Dataset:
        # tf.data seeds a shuffle from (graph seed, op seed). Pin the graph seed to the
        # dataset's, so the order depends on `seed` alone (not on a caller's
        # tf.random.set_seed), and never to 0: TF compares a (0, tensor) pair with (0, 0) in
        # Python and fails, which made seed 0 crash.
        tf.compat.v1.get_default_graph().seed = seed % _MAX_INT32 or _SEED_ZERO_STAND_IN
        shuffle_seed, augment_key = tf.unstack(_epoch_seeds(seed, epoch))
        return examples.shuffle(buffer_size, seed=shuffle_seed, reshuffle_each_iteration=False
                                ).map(lambda index, example: (
                                    index, {**example, "augment_key": augment_key}))

    return tf.data.Dataset.counter().flat_map(one_epoch)


def _processor(preprocess: PreprocessFn, is_training: bool,
               with_mask: bool) -> Callable[[tf.Tensor, Example], Example]:
    """Wraps a preprocessing function: derives the example's seed, adds its id and mask."""

    def process(example_id: tf.Tensor, example: Example) -> Example:
        example = dict(example)
        augment_seed = None
        if is_training:
            augment_seed = tf.stack([example.pop("augment_key"), example_id])
        out = dict(preprocess(example, augment_seed))
        missing = {"features", "labels"} - set(out)
        if missing:
            raise ValueError(f"preprocessing must return 'features' and 'labels'; missing "
                             f"{sorted(missing)} (got keys {sorted(out)})")
        out["id"] = example_id
        if with_mask:
            out["mask"] = tf.constant(1.0, tf.float32)
        return out

    return process


def _shard_size(num_examples: int, num_shards: int, index: int) -> int:
    """Number of elements ``Dataset.shard(num_shards, index)`` keeps of ``num_examples``."""
    return max(0, (num_examples - index + num_shards - 1) // num_shards)


def _padding(spec: Mapping[str, tf.TensorSpec], count: int) -> tf.data.Dataset:
    """``count`` all-zero examples with id -1 and mask 0, matching ``spec``."""
    undefined = [key for key, s in spec.items() if not s.shape.is_fully_defined()]
    if undefined:
        raise ValueError(f"evaluation padding needs fixed shapes; preprocessing returns "
                         f"unknown shapes for {undefined}: {[str(spec[k].shape) for k in undefined]}")
    zeros: dict[str, Any] = {key: tf.zeros(s.shape, s.dtype) for key, s in spec.items()}
    zeros["id"] = tf.constant(-1, tf.int64)
    return tf.data.Dataset.from_tensors(zeros).repeat(count)


class TfdsDataset(BaseDataset):
    """A dataset stored in TFDS format (downloaded by TFDS or written by ``prepare``).

    Subclasses implement ``_preprocess`` only. The data is looked up in ``data_dir``, else
    ``$UB_DATA_DIR``, else the TFDS default directory.
    """

    def __init__(
        self,
        *,
        name: str,
        tfds_name: str,
        num_classes: int,
        split: str,
        config: str | None = None,
        data_dir: str | None = None,
        download_data: bool = False,
        decoders: Mapping[str, Any] | None = None,
        raw_splits: tuple[str, ...] = ("train", "test"),
        tfds_split_names: Mapping[str, str] | None = None,
        **kwargs: Any,
    ):
        """Finds (or downloads) the data; arguments not listed go to ``BaseDataset``.

        Args:
          name: registry name (the name the prepare command takes).
          tfds_name: TFDS builder name.
          config: TFDS builder config name, if the builder has configs.
          data_dir: where the TFDS-format data lives (see ``resolve_data_dir``).
          download_data: let TFDS download and prepare the data when it is missing.
          decoders: TFDS decoders, e.g. ``{'image': tfds.decode.SkipDecoding()}``.
          raw_splits: our names of the splits the data has.
          tfds_split_names: TFDS split name of each of our split names where they differ
            (ImageNet's 'validation' set is our 'test').
        Raises:
          DataNotFoundError: the data is absent and download_data is False.
        """
        super().__init__(name=name, num_classes=num_classes, split=split,
                         raw_splits=raw_splits, **kwargs)
        self.data_dir = resolve_data_dir(data_dir)
        self._decoders = decoders
        self._tfds_split_names = {split: split for split in raw_splits}
        self._tfds_split_names.update(tfds_split_names or {})
        full_name = f"{tfds_name}/{config}" if config else tfds_name
        missing = DataNotFoundError(
            f"{name} ({full_name}) is not prepared in "
            f"{self.data_dir or 'the TFDS default data directory'}. Prepare it offline with "
            f"`{prepare_command(name, self.data_dir)}`, or pass download_data=True where "
            "TFDS can download it.")
        try:
            self._builder = tfds.builder(full_name, data_dir=self.data_dir)
        except tfds.core.registered.DatasetNotFoundError:
            # Not a TFDS catalogue name and no prepared copy in data_dir to read from.
            raise missing from None
        if not self._builder.is_prepared():
            if not download_data:
                raise missing
            self._builder.download_and_prepare()

    def _split_sizes(self) -> Mapping[str, int]:
        splits = self._builder.info.splits
        return {ours: splits[theirs].num_examples
                for ours, theirs in self._tfds_split_names.items() if theirs in splits}

    def _read(self, split: str, start: int, stop: int) -> tf.data.Dataset:
        # In-order reads (shuffle_files=False, cycle length 1) keep ids stable; caching
        # is left to the `cache` argument rather than to TFDS's auto-cache; the pipeline
        # prefetches whole batches at its end, so TFDS's per-example prefetch only costs CPU.
        read_config = tfds.ReadConfig(try_autocache=False, interleave_cycle_length=1,
                                      skip_prefetch=True)
        tfds_split = self._tfds_split_names[split]
        return self._builder.as_dataset(split=f"{tfds_split}[{start}:{stop}]", shuffle_files=False,
                                        decoders=self._decoders, read_config=read_config)
