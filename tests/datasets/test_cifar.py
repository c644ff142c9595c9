"""CIFAR-10/100 and CIFAR-10-C on mocked TFDS data: preprocessing, augmentation, errors."""
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import uncertainty_baselines as ub
from image_flag_values import image_flags
from uncertainty_baselines.training import experiment
from mock_tfds_data import expected_pixel, image_example_fn, mock_tfds

CIFAR10_MEAN = np.array([0.4914, 0.4822, 0.4465])
CIFAR10_STD = np.array([0.2470, 0.2435, 0.2616])


def gradient_example(index):
    """Pixel (r, c, ch) = (r * 32 + c + 50 * ch + index) mod 251: every window is unique."""
    rows = tf.range(32, dtype=tf.int64)[:, None, None] * 32
    cols = tf.range(32, dtype=tf.int64)[None, :, None]
    chans = tf.range(3, dtype=tf.int64)[None, None, :] * 50
    image = tf.cast((rows + cols + chans + index) % 251, tf.uint8)
    return {"image": image, "label": index % 10}


def to_uint8(features, mean=CIFAR10_MEAN, std=CIFAR10_STD):
    return np.round((features * std + mean) * 255).astype(np.int64)


def crop_and_flip_of(raw, output, pad=4):
    """All (dy, dx, flipped) whose pad-`pad` crop (then optional flip) of raw equals output."""
    padded = np.pad(raw, ((pad, pad), (pad, pad), (0, 0)))
    found = []
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            window = padded[dy:dy + 32, dx:dx + 32]
            for flipped in (False, True):
                if np.array_equal(window[:, ::-1] if flipped else window, output):
                    found.append((dy, dx, flipped))
    return found


@pytest.fixture
def cifar10(tmp_path):
    sizes = {"train": 40, "test": 13}
    with mock_tfds(str(tmp_path), {"cifar10": (sizes, image_example_fn((32, 32, 3), 10)),
                                   "cifar100": (sizes, image_example_fn((32, 32, 3), 100))}):
        yield


def test_test_split_is_normalised_per_channel(cifar10):
    ds = ub.datasets.get("cifar10", split="test")
    assert (ds.num_examples, ds.num_classes) == (13, 10)
    batch = next(iter(ds.load(batch_size=13)))
    features = batch["features"].numpy()
    assert features.shape == (13, 32, 32, 3) and features.dtype == np.float32
    for i in range(13):
        raw = np.array([expected_pixel(i, c) for c in range(3)])
        expected = (raw / 255 - CIFAR10_MEAN) / CIFAR10_STD
        np.testing.assert_allclose(features[i], np.broadcast_to(expected, (32, 32, 3)), atol=1e-5)
    np.testing.assert_array_equal(batch["labels"].numpy(), np.arange(13) % 10)
    assert batch["mask"].numpy().sum() == 13


def test_cifar100_uses_its_own_statistics(cifar10):
    ds = ub.datasets.get("cifar100", split="test")
    assert ds.num_classes == 100
    first = next(iter(ds.load(batch_size=1)))["features"].numpy()[0, 0, 0]
    expected = (np.array([0, 7, 14]) / 255 - np.array([0.5071, 0.4865, 0.4409])) / np.array(
        [0.2673, 0.2564, 0.2762])
    np.testing.assert_allclose(first, expected, atol=1e-5)


@pytest.mark.parametrize("crop_padding,pad", [(None, 4), (2, 2), (0, 0)])
def test_training_augmentation_is_a_padded_crop_and_flip(tmp_path, crop_padding, pad):
    kwargs = {} if crop_padding is None else {"crop_padding": crop_padding}
    with mock_tfds(str(tmp_path), {"cifar10": ({"train": 24, "test": 2}, gradient_example)}):
        ds = ub.datasets.get("cifar10", split="train", seed=0, **kwargs)
        batch = next(iter(ds.load(batch_size=24)))
    seen = set()
    for features, example_id in zip(batch["features"].numpy(), batch["id"].numpy()):
        raw = gradient_example(tf.constant(example_id, tf.int64))["image"].numpy()
        matches = crop_and_flip_of(raw.astype(np.int64), to_uint8(features), pad)
        assert len(matches) >= 1, f"example {example_id} is not a pad-{pad} crop/flip of its image"
        seen.update(matches)
    assert {flipped for _, _, flipped in seen} == {False, True}
    # Shifts use the whole range the padding allows (5x5 offsets at pad 2, only (0, 0) at pad 0).
    assert len({(dy, dx) for dy, dx, _ in seen}) > min(5, (2 * pad + 1) ** 2 - 1)


def test_crop_padding_is_refused_where_it_means_nothing(tmp_path):
    with pytest.raises(ValueError, match="crop_padding must be >= 0, got -1"):
        ub.datasets.get("cifar10", split="train", crop_padding=-1, data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="mnist has no pad-and-crop augmentation"):
        ub.datasets.get("mnist", split="train", crop_padding=2, data_dir=str(tmp_path))


def test_training_augmentation_is_reproducible(cifar10):
    def first_batch(seed):
        ds = ub.datasets.get("cifar10", split="train", seed=seed)
        return next(iter(ds.load(batch_size=8)))["features"].numpy()

    np.testing.assert_array_equal(first_batch(7), first_batch(7))
    assert not np.array_equal(first_batch(7), first_batch(8))


def test_corrupted_reads_the_config_of_type_and_severity(tmp_path):
    builders = {"cifar10_corrupted/gaussian_noise_3": ({"test": 5},
                                                       image_example_fn((32, 32, 3), 10))}
    with mock_tfds(str(tmp_path), builders):
        ds = ub.datasets.get("cifar10_corrupted", split="test", corruption_type="gaussian_noise",
                             severity=3)
        batch = next(iter(ds.load(batch_size=8)))
    assert ds.num_examples == 5 and batch["mask"].numpy().sum() == 5
    assert ds._builder.builder_config.name == "gaussian_noise_3"
    assert "gaussian_noise" in ds.corruption_types() and len(ds.corruption_types()) >= 15


@pytest.mark.parametrize("kwargs,message", [
    ({"corruption_type": "gaussian_noise", "severity": 6}, "severity must be one of"),
    ({"corruption_type": "rain", "severity": 1}, "unknown corruption_type 'rain'.*brightness"),
    ({"corruption_type": "fog", "severity": 1, "split": "train"}, "valid splits: \\['test'\\]"),
])
def test_corrupted_bad_arguments(kwargs, message):
    kwargs.setdefault("split", "test")
    with pytest.raises(ValueError, match=message):
        ub.datasets.get("cifar10_corrupted", **kwargs)


def test_missing_data_names_the_prepare_command(tmp_path):
    with pytest.raises(ub.datasets.DataNotFoundError) as error:
        ub.datasets.get("cifar10", split="test", data_dir=str(tmp_path))
    assert isinstance(error.value, FileNotFoundError)
    assert (f"python -m uncertainty_baselines.datasets.prepare cifar10 --source PATH "
            f"--data_dir {tmp_path}") in str(error.value)


@pytest.fixture(scope="module")
def prepared_cifar10(tmp_path_factory):
    """A real TFDS-format cifar10 (3 train + 1 test PNG per class) written by ``prepare``."""
    from uncertainty_baselines.datasets import local_builders
    from uncertainty_baselines.datasets.prepare import prepare
    root = tmp_path_factory.mktemp("cifar10")
    rng = np.random.default_rng(0)
    for split, per_class in (("train", 3), ("test", 1)):
        for name in local_builders.CIFAR10_CLASSES:
            folder = root / "src" / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                (folder / f"{i}.png").write_bytes(tf.io.encode_png(image).numpy())
    prepare("cifar10", root / "src", root / "data", check=False)
    return str(root / "data")


def test_prepared_data_slices_match_plain_tfds_order(prepared_cifar10):
    """On real TFDS files, ids index the split in TFDS's order and validation is its tail."""
    plain = list(tfds.as_numpy(tfds.load("cifar10", split="train", data_dir=prepared_cifar10,
                                         shuffle_files=False)))
    assert len(plain) == 30
    for split, expected in (("train", plain[:24]), ("validation", plain[24:])):
        ds = ub.datasets.get("cifar10", split=split, data_dir=prepared_cifar10,
                             validation_percent=0.2, is_training=False)
        batch = next(iter(ds.load(batch_size=32)))
        real = batch["mask"].numpy() == 1
        assert real.sum() == len(expected) == ds.num_examples
        np.testing.assert_array_equal(batch["id"].numpy()[real], np.arange(len(expected)))
        np.testing.assert_array_equal(to_uint8(batch["features"].numpy()[real]),
                                      np.stack([ex["image"] for ex in expected]))
        np.testing.assert_array_equal(batch["labels"].numpy()[real],
                                      [ex["label"] for ex in expected])


def test_prepared_data_trains_and_evaluates_under_a_strategy(prepared_cifar10):
    devices = tf.config.list_logical_devices("CPU")
    if len(devices) < 2:
        pytest.skip("needs 2 logical CPU devices (tests/conftest.py configures them)")
    strategy = tf.distribute.MirroredStrategy([d.name for d in devices[:2]])
    test = ub.datasets.get("cifar10", split="test", data_dir=prepared_cifar10)
    ids, mask = [], []
    for batch in test.load(batch_size=4, strategy=strategy):
        ids += [t.numpy() for t in strategy.experimental_local_results(batch["id"])]
        mask += [t.numpy() for t in strategy.experimental_local_results(batch["mask"])]
    ids, mask = np.concatenate(ids), np.concatenate(mask)
    assert sorted(ids[mask == 1].tolist()) == list(range(10)) and mask.sum() == 10
    train = ub.datasets.get("cifar10", split="train", data_dir=prepared_cifar10, seed=0)
    batch = next(iter(train.load(batch_size=8, strategy=strategy)))
    shapes = [t.shape for t in strategy.experimental_local_results(batch["features"])]
    assert shapes == [(4, 32, 32, 3), (4, 32, 32, 3)]


@pytest.mark.parametrize("crop_padding,shifted", [(None, True), (0, False)])
def test_the_crop_padding_flag_reaches_the_training_set(cifar10, tmp_path, crop_padding, shifted):
    # Mock images are constant per channel: a shifted crop shows a black border, an unshifted one none.
    values = image_flags(crop_padding=crop_padding, data_dir=str(tmp_path), download_data=False, seed=0,
                         batch_size=40)
    data = experiment.load_image_data(values, tf.distribute.get_strategy(), with_corrupted=False)
    images = to_uint8(next(iter(data.train))["features"].numpy())
    constant = [(image == image[0, 0]).all() for image in images]
    assert (not all(constant)) is shifted
