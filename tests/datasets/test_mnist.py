"""MNIST / Fashion-MNIST (+ -C) on mocked TFDS data, SVHN preprocessing."""
import numpy as np
import pytest

import uncertainty_baselines as ub
from mock_tfds_data import expected_pixel, image_example_fn, mock_tfds


@pytest.fixture
def mnists(tmp_path):
    sizes = {"train": 12, "test": 5}
    make = image_example_fn((28, 28, 1), 10)
    with mock_tfds(str(tmp_path), {"mnist": (sizes, make), "fashion_mnist": (sizes, make),
                                   "svhn_cropped": (sizes, image_example_fn((32, 32, 3), 10))}):
        yield


@pytest.mark.parametrize("name,mean,std", [("mnist", 0.1307, 0.3081),
                                           ("fashion_mnist", 0.2860, 0.3530)])
def test_grayscale_images_are_scaled_and_normalised(mnists, name, mean, std):
    ds = ub.datasets.get(name, split="test")
    batch = next(iter(ds.load(batch_size=5)))
    features = batch["features"].numpy()
    assert features.shape == (5, 28, 28, 1)
    expected = (np.array([expected_pixel(i, 0) for i in range(5)]) / 255 - mean) / std
    np.testing.assert_allclose(features[:, 14, 14, 0], expected, atol=1e-5)
    np.testing.assert_array_equal(batch["labels"].numpy(), np.arange(5))


@pytest.mark.parametrize("name", ["fashion_mnist", "svhn_cropped"])
def test_training_has_no_augmentation(mnists, name):
    train = ub.datasets.get(name, split="train", seed=0)
    evaluation = ub.datasets.get(name, split="train", is_training=False)
    shuffled = next(iter(train.load(batch_size=12)))
    in_order = next(iter(evaluation.load(batch_size=12)))["features"].numpy()
    assert sorted(shuffled["id"].numpy().tolist()) == list(range(12))
    np.testing.assert_array_equal(shuffled["features"].numpy(), in_order[shuffled["id"].numpy()])


def test_svhn_uses_its_own_statistics(mnists):
    ds = ub.datasets.get("svhn_cropped", split="test")
    first = next(iter(ds.load(batch_size=1)))["features"].numpy()[0, 0, 0]
    expected = (np.array([0, 7, 14]) / 255 - np.array([0.4377, 0.4438, 0.4728])) / np.array(
        [0.1980, 0.2010, 0.1970])
    np.testing.assert_allclose(first, expected, atol=1e-5)
    with pytest.raises(ValueError, match="unknown split 'extra'"):
        ub.datasets.get("svhn_cropped", split="extra")


def test_fashion_mnist_corrupted_missing_data_names_the_prepare_command(tmp_path):
    cls = ub.datasets.get_class("fashion_mnist_corrupted")
    assert cls.corruption_types() == ()  # not a TFDS catalogue dataset
    with pytest.raises(ub.datasets.DataNotFoundError,
                       match="prepare fashion_mnist_corrupted --source PATH") as error:
        ub.datasets.get("fashion_mnist_corrupted", split="test", corruption_type="fog",
                        severity=2, data_dir=str(tmp_path))
    assert "fashion_mnist_corrupted/fog_2" in str(error.value)
    assert error.value.__suppress_context__  # no TFDS traceback chained to it
    with pytest.raises(ValueError, match="severity must be one of"):
        ub.datasets.get("fashion_mnist_corrupted", split="test", corruption_type="fog",
                        severity=0)
