"""ImageNet family on mocked TFDS data: split mapping, ResNet/Inception preprocessing."""
import numpy as np
import pytest
import tensorflow as tf

import uncertainty_baselines as ub
from uncertainty_baselines.datasets import imagenet
from mock_tfds_data import image_example_fn, mock_tfds

MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


def varied_size_example(index):
    """Constant-colour images whose size depends on the index (ImageNet sizes vary)."""
    height = 60 + 10 * (index % 3)
    colour = tf.cast(tf.stack([index * 10, 100, 200 - index * 10]) % 256, tf.uint8)
    return {"image": tf.broadcast_to(colour, tf.stack([height, 80, 3])),
            "label": index * 37 % 1000, "file_name": tf.constant("x.JPEG")}


def colour(index):
    return np.array([index * 10 % 256, 100, (200 - index * 10) % 256])


@pytest.fixture
def imagenets(tmp_path):
    builders = {
        "imagenet2012": ({"train": 6, "validation": 4}, varied_size_example),
        "imagenet_a": ({"test": 3}, varied_size_example),
        "imagenet2012_corrupted/fog_2": ({"validation": 2}, image_example_fn((224, 224, 3), 1000)),
    }
    with mock_tfds(str(tmp_path), builders):
        yield


@pytest.mark.parametrize("preprocessing", ["resnet", "inception"])
def test_test_split_is_the_official_validation_set(imagenets, preprocessing):
    ds = ub.datasets.get("imagenet2012", split="test", preprocessing=preprocessing)
    assert (ds.num_examples, ds.num_classes) == (4, 1000)
    batch = next(iter(ds.load(batch_size=4)))
    features = batch["features"].numpy()
    assert features.shape == (4, 224, 224, 3)
    for i in range(4):
        if preprocessing == "resnet":
            expected = (colour(i) / 255 - MEAN) / STD
        else:
            expected = colour(i) / 127.5 - 1
        np.testing.assert_allclose(features[i], np.broadcast_to(expected, (224, 224, 3)),
                                   atol=1e-4)
    np.testing.assert_array_equal(batch["labels"].numpy(), np.arange(4) * 37 % 1000)


def test_training_crops_are_224_and_reproducible(imagenets):
    def first(seed):
        ds = ub.datasets.get("imagenet2012", split="train", seed=seed)
        return next(iter(ds.load(batch_size=6)))

    a, b = first(3), first(3)
    assert a["features"].shape == (6, 224, 224, 3)
    np.testing.assert_array_equal(a["features"].numpy(), b["features"].numpy())
    for features, example_id in zip(a["features"].numpy(), a["id"].numpy()):
        # Crops of a constant image are that constant.
        np.testing.assert_allclose(features[100, 100], (colour(example_id) / 255 - MEAN) / STD,
                                   atol=1e-4)


def test_resize_and_center_crop_takes_the_middle():
    # 256 x 512 image with pixel = column index mod 256: already 256 on the shorter side.
    image = tf.broadcast_to(tf.cast(tf.range(512) % 256, tf.float32)[None, :, None], (256, 512, 1))
    crop = imagenet.resize_and_center_crop(image).numpy()
    assert crop.shape == (224, 224, 1)
    np.testing.assert_array_equal(crop[0, :, 0], np.arange(144, 368) % 256)
    upscaled = imagenet.resize_and_center_crop(tf.zeros((100, 300, 3)))
    assert upscaled.shape == (224, 224, 3)


def test_random_resized_crop_of_full_area_is_the_resized_image():
    image = tf.random.stateless_uniform((50, 50, 3), seed=[1, 2]) * 255
    crop = imagenet.random_resized_crop(image, tf.constant([4, 5], tf.int64), (1.0, 1.0))
    np.testing.assert_allclose(crop.numpy(), tf.image.resize(image, (224, 224)).numpy(), atol=1e-3)


def test_robustness_sets(imagenets):
    a = ub.datasets.get("imagenet_a", split="test")
    assert a.num_examples == 3 and next(iter(a.load(batch_size=2)))["features"].shape == (2, 224, 224, 3)
    with pytest.raises(ValueError, match="valid splits: \\['test'\\]"):
        ub.datasets.get("imagenet_a", split="train")
    c = ub.datasets.get("imagenet2012_corrupted", split="test", corruption_type="fog", severity=2)
    features = next(iter(c.load(batch_size=2)))["features"].numpy()
    # ImageNet-C images are 224x224 already: only normalised, not resized or cropped.
    np.testing.assert_allclose(features[1, 0, 0], (np.array([1, 8, 15]) / 255 - MEAN) / STD,
                               atol=1e-5)


def test_bad_preprocessing_name(imagenets):
    with pytest.raises(ValueError, match="preprocessing must be one of \\('resnet', 'inception'\\)"):
        ub.datasets.get("imagenet2012", split="test", preprocessing="vgg")
