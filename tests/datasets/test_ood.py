"""OOD evaluation sets: in-distribution test + OOD examples preprocessed the in-dist way."""
import numpy as np
import pytest

import uncertainty_baselines as ub
from uncertainty_baselines.datasets import ood
from mock_tfds_data import expected_pixel, image_example_fn, mock_tfds

CIFAR10_MEAN = np.array([0.4914, 0.4822, 0.4465])
CIFAR10_STD = np.array([0.2470, 0.2435, 0.2616])


@pytest.fixture
def image_sets(tmp_path):
    with mock_tfds(str(tmp_path), {
            "cifar10": ({"train": 4, "test": 5}, image_example_fn((32, 32, 3), 10)),
            "svhn_cropped": ({"train": 4, "test": 3}, image_example_fn((32, 32, 3), 10)),
            "fashion_mnist": ({"train": 4, "test": 2}, image_example_fn((28, 28, 1), 10))}):
        yield


def load_all(dataset, batch_size):
    bs = [{k: v.numpy() for k, v in b.items()} for b in dataset.load(batch_size=batch_size)]
    return {k: np.concatenate([b[k] for b in bs]) for k in bs[0]}


def test_svhn_as_ood_for_cifar10_uses_cifar_preprocessing(image_sets):
    ds = ood.get_ood("cifar10", "svhn_cropped")
    assert (ds.num_examples, ds.num_classes) == (8, 10)
    out = load_all(ds, batch_size=3)
    real = out["mask"] == 1
    assert out["mask"].sum() == 8 and len(out["mask"]) == 9
    np.testing.assert_array_equal(out["id"][real], np.arange(8))
    np.testing.assert_array_equal(out["is_in_distribution"][real], [1] * 5 + [0] * 3)
    np.testing.assert_array_equal(out["labels"][real], [0, 1, 2, 3, 4] + [ood.OOD_LABEL] * 3)
    assert out["is_in_distribution"][~real].tolist() == [0]
    for position, index in zip(range(5, 8), range(3)):  # SVHN example `index`
        raw = np.array([expected_pixel(index, c) for c in range(3)])
        np.testing.assert_allclose(out["features"][position, 0, 0],
                                   (raw / 255 - CIFAR10_MEAN) / CIFAR10_STD, atol=1e-5)


def test_the_ood_examples_alone_are_the_full_sets_tail_with_their_own_ids(image_sets):
    full = load_all(ood.get_ood("cifar10", "svhn_cropped"), batch_size=8)
    alone = ood.get_ood("cifar10", "svhn_cropped", include_in_distribution=False)
    assert alone.num_examples == 3
    out = load_all(alone, batch_size=2)
    real = out["mask"] == 1
    np.testing.assert_array_equal(out["id"][real], np.arange(3))
    np.testing.assert_array_equal(out["is_in_distribution"][real], [0, 0, 0])
    np.testing.assert_array_equal(out["features"][real], full["features"][5:8])
    np.testing.assert_array_equal(out["labels"][real], [ood.OOD_LABEL] * 3)


def test_cifar10_as_ood_for_fashion_mnist_is_converted_to_grayscale_28x28(image_sets):
    out = load_all(ood.get_ood("fashion_mnist", "cifar10"), batch_size=7)
    assert out["features"].shape == (7, 28, 28, 1)
    for position, index in zip(range(2, 7), range(5)):
        red, green, blue = (expected_pixel(index, c) for c in range(3))
        gray = 0.2989 * red + 0.5870 * green + 0.1140 * blue  # ITU-R 601 luma
        np.testing.assert_allclose(out["features"][position], (gray / 255 - 0.2860) / 0.3530,
                                   atol=1.01 / 255 / 0.3530)  # one grey level


def test_random_images_as_ood_keep_their_features(image_sets):
    ds = ood.get_ood("cifar10", "random_gaussian", ood_kwargs={"num_examples": 4, "seed": 9})
    out = load_all(ds, batch_size=9)
    own = load_all(ub.datasets.get("random_gaussian", "test", num_examples=4, seed=9), 4)
    np.testing.assert_array_equal(out["features"][5:9], own["features"])
    np.testing.assert_array_equal(out["is_in_distribution"], [1] * 5 + [0] * 4)


def test_mismatched_random_shape_and_training_splits_are_rejected(image_sets):
    with pytest.raises(ValueError, match="features have shape \\(28, 28, 1\\).*\\(32, 32, 3\\)"):
        ood.get_ood("cifar10", "random_gaussian",
                    ood_kwargs={"image_shape": (28, 28, 1)}).load(batch_size=2)
    with pytest.raises(ValueError, match="must be an evaluation split"):
        ood.OodDataset(ub.datasets.get("cifar10", "train"), ub.datasets.get("svhn_cropped", "test"))
