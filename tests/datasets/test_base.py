"""BaseDataset pipeline: ids, coverage, padding, determinism, replicas, carve-out, errors."""
import collections

import numpy as np
import pytest
import tensorflow as tf

import uncertainty_baselines as ub
from uncertainty_baselines.datasets import base


class ArrayDataset(base.BaseDataset):
    """Raw example i of a split has x = 100 * split_offset + i; label i % 3.

    Training adds a stateless uniform [0, 1) draw to x, so features reveal both the raw
    example and its augmentation.
    """

    OFFSET = {"train": 0, "test": 1000, "validation": 2000}

    def __init__(self, split, sizes=None, **kwargs):
        self.sizes = sizes or {"train": 10, "test": 7}
        self.reads = 0
        super().__init__(name="array", num_classes=3, split=split,
                         raw_splits=tuple(self.sizes), **kwargs)

    def _split_sizes(self):
        return self.sizes

    def _read(self, split, start, stop):
        self.reads += 1
        offset = self.OFFSET[split]
        return tf.data.Dataset.range(start, stop).map(
            lambda i: {"x": tf.cast(i + offset, tf.float32), "y": tf.cast(i % 3, tf.int32)})

    def _preprocess(self, example, seed):
        return array_preprocess(example, seed)


def array_preprocess(example, seed):
    """ArrayDataset's preprocessing: x as a 1-vector, plus U[0, 1) noise when training."""
    x = example["x"]
    if seed is not None:
        x = x + tf.random.stateless_uniform([], seed)
    return {"features": tf.reshape(x, [1]), "labels": example["y"]}


def batches(dataset, take=None):
    if take is not None:
        dataset = dataset.take(take)
    return [{k: v.numpy() for k, v in b.items()} for b in dataset]


def concat(bs, key):
    return np.concatenate([b[key] for b in bs])


def replica_batches(strategy, dist_dataset, steps=None):
    """Per step, the list of per-replica batches (as NumPy dicts)."""
    out = []
    for step, batch in enumerate(dist_dataset):
        if steps is not None and step == steps:
            break
        per_replica = {k: strategy.experimental_local_results(v) for k, v in batch.items()}
        out.append([{k: per_replica[k][r].numpy() for k in per_replica}
                    for r in range(strategy.num_replicas_in_sync)])
    return out


@pytest.fixture(scope="module")
def strategy():
    devices = tf.config.list_logical_devices("CPU")
    if len(devices) < 2:
        pytest.skip("needs 2 logical CPU devices (tests/conftest.py configures them)")
    return tf.distribute.MirroredStrategy([d.name for d in devices[:2]])


@pytest.mark.parametrize("batch_size", [1, 3, 4, 7, 10])
def test_eval_covers_every_example_once_with_padding(batch_size):
    ds = ArrayDataset("test")
    bs = batches(ds.load(batch_size=batch_size))
    assert len(bs) == -(-7 // batch_size)
    assert all(b["id"].shape == (batch_size,) for b in bs)
    ids, mask = concat(bs, "id"), concat(bs, "mask")
    assert sorted(ids[mask == 1].tolist()) == list(range(7))
    assert mask.sum() == 7 and mask.dtype == np.float32
    assert (ids[mask == 0] == -1).all()
    # Real examples are in order and unaugmented: x = 1000 + id.
    np.testing.assert_array_equal(concat(bs, "features")[mask == 1, 0], 1000 + np.arange(7))
    np.testing.assert_array_equal(concat(bs, "labels")[mask == 1], np.arange(7) % 3)


def test_eval_without_mask_keeps_or_drops_the_last_batch():
    kept = batches(ArrayDataset("test", mask_and_pad=False).load(batch_size=4))
    assert [b["id"].tolist() for b in kept] == [[0, 1, 2, 3], [4, 5, 6]]
    assert "mask" not in kept[0]
    dropped = batches(ArrayDataset("test", mask_and_pad=False, drop_remainder=True)
                      .load(batch_size=4))
    assert [b["id"].tolist() for b in dropped] == [[0, 1, 2, 3]]


@pytest.mark.parametrize("global_batch", [2, 4, 6, 16])
def test_distributed_eval_covers_every_example_once(strategy, global_batch):
    ds = ArrayDataset("test")
    steps = replica_batches(strategy, ds.load(batch_size=global_batch, strategy=strategy))
    assert len(steps) == -(-7 // global_batch)
    per_replica = [b for step in steps for b in step]
    assert all(b["id"].shape == (global_batch // 2,) for b in per_replica)
    ids, mask = concat(per_replica, "id"), concat(per_replica, "mask")
    assert sorted(ids[mask == 1].tolist()) == list(range(7))
    assert mask.sum() == 7 and (ids[mask == 0] == -1).all()


def test_training_is_deterministic_and_reshuffles_every_epoch():
    first = concat(batches(ArrayDataset("train", seed=5).load(batch_size=5), take=6), "features")
    again = concat(batches(ArrayDataset("train", seed=5).load(batch_size=5), take=6), "features")
    other = concat(batches(ArrayDataset("train", seed=6).load(batch_size=5), take=6), "features")
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    raw = np.floor(first[:, 0]).astype(int)
    epochs = raw.reshape(3, 10)
    for epoch in epochs:  # every epoch is a permutation of the whole split
        assert sorted(epoch.tolist()) == list(range(10))
    assert len({tuple(e) for e in epochs}) == 3
    # Augmentation is in [0, 1) and differs between epochs for the same example.
    augment = first[:, 0] - raw
    assert ((augment >= 0) & (augment < 1)).all()
    by_example = collections.defaultdict(set)
    for example, value in zip(raw, augment):
        by_example[example].add(float(value))
    assert all(len(values) == 3 for values in by_example.values())


def test_training_order_depends_on_the_dataset_seed_alone_and_seed_zero_works():
    def stream(seed, global_seed):
        tf.random.set_seed(global_seed)
        return concat(batches(ArrayDataset("train", seed=seed).load(batch_size=5), take=4), "features")

    # Before, the order also followed tf.random.set_seed, and a global seed of 0 crashed
    # ("Using a symbolic tf.Tensor as a Python bool"): baselines run with --seed=0 died.
    np.testing.assert_array_equal(stream(5, 0), stream(5, 123))
    np.testing.assert_array_equal(stream(0, 0), stream(0, 9))
    assert not np.array_equal(stream(0, 0), stream(5, 0))


def test_training_stream_does_not_depend_on_batch_size():
    by_2 = batches(ArrayDataset("train", seed=1).load(batch_size=2), take=10)
    by_5 = batches(ArrayDataset("train", seed=1).load(batch_size=5), take=4)
    np.testing.assert_array_equal(concat(by_2, "features"), concat(by_5, "features"))
    np.testing.assert_array_equal(concat(by_2, "id"), concat(by_5, "id"))
    assert "mask" not in by_2[0]


def test_training_global_batches_do_not_depend_on_replica_count(strategy):
    single = batches(ArrayDataset("train", seed=2).load(batch_size=4), take=6)
    steps = replica_batches(
        strategy, ArrayDataset("train", seed=2).load(batch_size=4, strategy=strategy), steps=6)
    for one, replicas in zip(single, steps):
        assert all(r["id"].shape == (2,) for r in replicas)
        merged = sorted(zip(concat(replicas, "id").tolist(),
                            concat(replicas, "features")[:, 0].tolist()))
        assert merged == sorted(zip(one["id"].tolist(), one["features"][:, 0].tolist()))


@pytest.mark.parametrize("split,expected", [("train", range(0, 7)), ("validation", range(7, 10))])
def test_validation_is_carved_off_the_end_of_train(split, expected):
    ds = ArrayDataset(split, validation_percent=0.3, is_training=False)
    assert ds.num_examples == len(expected)
    bs = batches(ds.load(batch_size=4))
    mask = concat(bs, "mask")
    np.testing.assert_array_equal(concat(bs, "features")[mask == 1, 0], list(expected))
    np.testing.assert_array_equal(concat(bs, "id")[mask == 1], np.arange(len(expected)))


def test_defaults_follow_the_split():
    train, test = ArrayDataset("train"), ArrayDataset("test")
    assert train.is_training and not train.mask_and_pad
    assert not test.is_training and test.mask_and_pad
    assert ArrayDataset("test", seed=3).seed == 3
    assert train.shuffle_buffer_size == 10


def test_native_validation_split_is_used_without_carve_out():
    ds = ArrayDataset("validation", sizes={"train": 10, "validation": 4, "test": 7})
    assert ds.num_examples == 4 and not ds.is_training
    bs = batches(ds.load(batch_size=4))
    np.testing.assert_array_equal(concat(bs, "features")[:, 0], 2000 + np.arange(4))


@pytest.mark.parametrize("kwargs,message", [
    ({"split": "dev"}, "valid splits: \\['test', 'train'\\]"),
    ({"split": "validation"}, "validation_percent > 0"),
    ({"split": "train", "validation_percent": 1.0}, "validation_percent must be in \\[0, 1\\)"),
    ({"split": "train", "validation_percent": -0.1}, "validation_percent must be in"),
    ({"split": "train", "shuffle_buffer_size": 0}, "shuffle_buffer_size must be positive"),
    ({"split": "train", "mask_and_pad": True}, "mask_and_pad is for evaluation"),
])
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ArrayDataset(**kwargs)


@pytest.mark.parametrize("batch_size", [0, -4, 2.5, True])
def test_bad_batch_size_fails_before_reading(batch_size):
    ds = ArrayDataset("test")
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        ds.load(batch_size=batch_size)
    assert ds.reads == 0


def test_batch_not_divisible_by_replicas_fails_before_reading(strategy):
    ds = ArrayDataset("test")
    with pytest.raises(ValueError, match="not divisible by the 2 replicas"):
        ds.load(batch_size=3, strategy=strategy)
    assert ds.reads == 0


def test_preprocess_fn_replaces_the_default_and_is_checked():
    def double(example, seed):
        assert seed is None
        return {"features": example["x"] * 2, "labels": example["y"], "extra": example["y"] + 1}

    b = batches(ArrayDataset("test").load(batch_size=7, preprocess_fn=double))[0]
    np.testing.assert_array_equal(b["features"], 2 * (1000 + np.arange(7)))
    np.testing.assert_array_equal(b["extra"], np.arange(7) % 3 + 1)
    with pytest.raises(ValueError, match="missing \\['labels'\\]"):
        ArrayDataset("test").load(batch_size=2, preprocess_fn=lambda ex, seed: {"features": ex["x"]})


def test_registry_rejects_unknown_names_and_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown dataset 'cifar11'.*cifar10, cifar100"):
        ub.datasets.get("cifar11", split="train")
    assert {"cifar10", "clinc_intent", "uci_yacht", "random_gaussian"} <= set(ub.datasets.DATASETS)


def test_registry_passes_the_name_to_shared_classes(monkeypatch):
    monkeypatch.setitem(ub.datasets._REGISTRY, "uci_yacht", f"{__name__}:NamedDataset")
    assert ub.datasets.get("uci_yacht", split="test").given_name == "uci_yacht"


class NamedDataset(ArrayDataset):
    def __init__(self, split, name):
        self.given_name = name
        super().__init__(split)


def test_data_dir_resolution(monkeypatch):
    monkeypatch.setenv("UB_DATA_DIR", "/env/dir")
    assert base.resolve_data_dir("/arg/dir") == "/arg/dir"
    assert base.resolve_data_dir(None) == "/env/dir"
    monkeypatch.delenv("UB_DATA_DIR")
    assert base.resolve_data_dir(None) is None


def _pipelines(ds, per_replica_batch, num_pipelines):
    """The input pipelines a multi-worker strategy would build (one replica each)."""
    return [ds._pipeline(ds._preprocess, per_replica_batch, pipeline_id=i,
                         num_pipelines=num_pipelines, replicas_per_pipeline=1)
            for i in range(num_pipelines)]


def test_sharded_training_pipelines_split_the_single_pipeline_batches():
    single = batches(ArrayDataset("train", seed=4).load(batch_size=6), take=5)
    shards = [batches(p, take=5) for p in _pipelines(ArrayDataset("train", seed=4), 2, 3)]
    for step, one in enumerate(single):
        merged = np.concatenate([shard[step]["features"] for shard in shards])
        np.testing.assert_array_equal(np.sort(merged[:, 0]), np.sort(one["features"][:, 0]))


def test_sharded_eval_pipelines_cover_every_example_once_in_equal_steps():
    shards = [batches(p) for p in _pipelines(ArrayDataset("test"), 2, 3)]
    assert [len(s) for s in shards] == [2, 2, 2]  # ceil(7 / 6) steps of 2 per pipeline
    per_replica = [b for s in shards for b in s]
    ids, mask = concat(per_replica, "id"), concat(per_replica, "mask")
    assert sorted(ids[mask == 1].tolist()) == list(range(7)) and mask.sum() == 7


def counting_preprocess(calls):
    """ArrayDataset's preprocessing, counting its executions in ``calls``."""

    def count(x):
        calls.append(1)
        return x

    def preprocess(example, seed):
        x = tf.py_function(count, [example["x"]], tf.float32)
        x.set_shape([])
        return array_preprocess({**example, "x": x}, seed)

    return preprocess


def test_cached_evaluation_preprocesses_once_and_repeats_exactly():
    calls = []
    loaded = ArrayDataset("test", cache=True).load(
        batch_size=3, preprocess_fn=counting_preprocess(calls))
    first, second = batches(loaded), batches(loaded)
    assert len(calls) == 7
    for a, b in zip(first, second):
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_cached_training_reads_once_but_augments_every_epoch():
    calls = []

    class Counted(ArrayDataset):
        def _read(self, split, start, stop):
            return super()._read(split, start, stop).map(
                lambda ex: {**ex, "x": counting_preprocess(calls)(ex, None)["features"][0]})

    epochs = concat(batches(Counted("train", seed=0, cache=True).load(batch_size=10), take=3),
                    "features")[:, 0]
    assert len(calls) == 10
    raw = np.floor(epochs).astype(int).reshape(3, 10)
    assert all(sorted(epoch.tolist()) == list(range(10)) for epoch in raw)
    assert len(set(np.round(epochs - np.floor(epochs), 6).tolist())) == 30


def test_training_on_an_empty_split_is_an_error_not_an_endless_loop():
    ds = ArrayDataset("train", sizes={"train": 1, "test": 1}, validation_percent=0.99)
    assert ds.num_examples == 1  # int(1 * 0.99) == 0 examples carved off
    with pytest.raises(ValueError, match="of 1 training examples is an empty validation split"):
        ArrayDataset("validation", sizes={"train": 1, "test": 1}, validation_percent=0.99).load(
            batch_size=2)
    empty = ArrayDataset("train", sizes={"train": 0, "test": 1})
    with pytest.raises(ValueError, match="has no examples to train on"):
        empty.load(batch_size=2)


@pytest.mark.parametrize("split", ["train", "test"])
def test_pipelines_run_without_tf_data_autotuning(split):
    """Deleting an autotuned iterator waits for autotuning's thread (up to 60 s in TF 2.21):
    every pipeline has it off, deterministic order on; a one-CPU strategy gets the pipeline
    itself, not tf.distribute's per-device dataset, which would autotune again."""
    one_cpu = ArrayDataset(split).load(batch_size=2, strategy=tf.distribute.OneDeviceStrategy("/cpu:0"))
    for dataset in (ArrayDataset(split).load(batch_size=2), one_cpu):
        assert isinstance(dataset, tf.data.Dataset)
        assert dataset.options().autotune.enabled is False and dataset.options().deterministic is True


def test_a_one_cpu_strategy_reads_the_batches_of_no_strategy():
    plain = batches(ArrayDataset("train", seed=3).load(batch_size=4), take=5)
    one_cpu = batches(ArrayDataset("train", seed=3).load(batch_size=4, strategy=tf.distribute.OneDeviceStrategy(
        "/cpu:0")), take=5)
    for a, b in zip(plain, one_cpu, strict=True):
        np.testing.assert_array_equal(a["features"], b["features"])
