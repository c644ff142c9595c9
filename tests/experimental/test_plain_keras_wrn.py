"""experimental/plain_keras_wrn: its hand-written metrics against ub.metrics, its WRN-16-2
against the library's (same parameter count, the shortcut conv's input), and one tiny
epoch end to end on a zip laid out as the CIFAR-10 JPEG copy."""
import io
import zipfile

import keras
import numpy as np
import pytest
from PIL import Image

import uncertainty_baselines as ub
from experimental.plain_keras_wrn import train


def test_accuracy_nll_ece_equal_ub_metrics():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(10) * 0.3, size=500)
    labels = rng.integers(0, 10, size=500)
    oracle = ub.metrics.ClassificationMetrics(num_classes=10)
    oracle.add_batch(probs, labels)
    expected = oracle.result()
    got = train.calibration(probs, labels)
    assert got["accuracy"] == pytest.approx(expected["accuracy"])
    assert got["nll"] == pytest.approx(expected["negative_log_likelihood"], rel=1e-5)  # eps vs clipping
    assert got["ece"] == pytest.approx(expected["ece"], rel=1e-6)


@pytest.mark.parametrize("shortcut_input, source", [("activated", "ReLU"), ("raw", "Conv2D")])
def test_the_plain_wrn_is_wrn_16_2_with_the_chosen_shortcut_input(shortcut_input, source):
    model = train.wide_resnet_16_2(shortcut_input, l2=5e-4)
    ours = ub.models.get("wide_resnet", input_shape=(32, 32, 3), depth=16, width_multiplier=2, num_classes=10)
    assert model.count_params() == ours.count_params() == 693_498
    first_shortcut = next(l for l in model.layers if getattr(l, "kernel_size", None) == (1, 1))
    assert type(first_shortcut.input._keras_history.operation).__name__ == source


def fake_cifar_zip(path, per_class_train=2, per_class_test=1):
    rng = np.random.default_rng(1)
    with zipfile.ZipFile(path, "w") as archive:
        for split, count in (("train", per_class_train), ("test", per_class_test)):
            for name in train.CLASSES:
                for i in range(count):
                    buffer = io.BytesIO()
                    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buffer, "JPEG")
                    archive.writestr(f"cifar10-jpeg/{split}/{name}/{i:04d}.jpg", buffer.getvalue())
    return path


def test_one_tiny_epoch_scores_every_test_image(tmp_path):
    keras.backend.clear_session()
    path = fake_cifar_zip(tmp_path / "tiny.zip")
    result = train.main(["--zip", str(path), "--epochs", "1", "--batch_size", "8", "--warmup_steps", "1"])
    assert 0 <= result["accuracy"] <= 1 and result["nll"] > 0 and 0 <= result["ece"] <= 1
    assert len(result["train_accuracy"]) == 1
    images, labels = train.load_split(str(path), "test")
    assert images.shape == (10, 32, 32, 3) and sorted(labels) == list(range(10))
    with pytest.raises(ValueError, match="--warmup_steps must be in"):
        train.main(["--zip", str(path), "--epochs", "1", "--batch_size", "8", "--warmup_steps", "3"])
