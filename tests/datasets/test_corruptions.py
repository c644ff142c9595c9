"""Corruption functions (CIFAR-10-C parameters) and generation of `<base>_corrupted` TFDS sets."""
import colorsys

import numpy as np
import pytest
from scipy import ndimage

from uncertainty_baselines.datasets import corruptions as C

RGB, GRAY = (32, 32, 3), (28, 28, 1)
# Corruptions that never touch the generator: the same output for every seed.
DETERMINISTIC = {"defocus_blur", "zoom_blur", "brightness", "contrast", "pixelate", "jpeg_compression"}


def synthetic(shape, seed):
    """A gradient background with a few flat rectangles: edges and smooth areas, values 0..255."""
    rng = np.random.default_rng(seed)
    h, w, c = shape
    rows, cols = np.mgrid[0:h, 0:w]
    image = rng.uniform(40, 120, c) + rows[..., None] * rng.uniform(-2, 2, c) + cols[..., None] * rng.uniform(-2, 2, c)
    for _ in range(6):
        top, left = rng.integers(0, h - 6), rng.integers(0, w - 6)
        image[top:top + rng.integers(4, 14), left:left + rng.integers(4, 14)] = rng.uniform(0, 255, c)
    return np.clip(image, 0, 255).astype(np.uint8)


def mean_abs_change(corruption_type, severity, shape):
    images = [synthetic(shape, seed) for seed in range(4)]
    return np.mean([np.abs(C.corrupt(image, corruption_type, severity, np.random.default_rng(i)).astype(float)
                           - image).mean() for i, image in enumerate(images)])


def test_the_fifteen_benchmark_corruptions_with_tfds_config_names():
    assert list(C.CORRUPTIONS) == [
        "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "frosted_glass_blur",
        "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic",
        "pixelate", "jpeg_compression"]


@pytest.mark.parametrize("shape", [RGB, GRAY, (40, 36, 3)], ids=["rgb", "gray", "non_square"])
@pytest.mark.parametrize("corruption_type", list(C.CORRUPTIONS))
def test_shape_dtype_and_determinism(corruption_type, shape):
    image = synthetic(shape, 0)
    for severity in C.SEVERITIES:
        out = C.corrupt(image, corruption_type, severity, np.random.default_rng(7))
        assert out.shape == shape and out.dtype == np.uint8
        assert not np.array_equal(out, image), f"{corruption_type} {severity} left the image unchanged"
        again = C.corrupt(image, corruption_type, severity, np.random.default_rng(7))
        np.testing.assert_array_equal(out, again)
        other = C.corrupt(image, corruption_type, severity, np.random.default_rng(8))
        assert np.array_equal(out, other) == (corruption_type in DETERMINISTIC)


# Mean absolute change to the clean image rises with severity for these (measured on the
# synthetic images here and on CIFAR-10 / Fashion-MNIST test images). motion_blur 3 and 4
# differ only in kernel taps of weight < 1e-9, so they are equal up to rounding.
MONOTONE = ["gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "motion_blur", "zoom_blur",
            "snow", "fog", "brightness", "contrast", "jpeg_compression"]


@pytest.mark.parametrize("shape", [RGB, GRAY], ids=["rgb", "gray"])
@pytest.mark.parametrize("corruption_type", MONOTONE)
def test_change_grows_with_severity(corruption_type, shape):
    changes = [mean_abs_change(corruption_type, s, shape) for s in C.SEVERITIES]
    assert np.all(np.diff(changes) >= -0.05), changes
    assert changes[-1] > changes[0] + 1.0, changes


@pytest.mark.parametrize("shape", [RGB, GRAY], ids=["rgb", "gray"])
def test_severity_order_of_the_non_monotone_corruptions(shape):
    """What does hold for the rest: the published parameters are not monotone in this measure
    (glass blur 1 and 2 nearly equal, frost's image weight drops while its frost weight
    plateaus, pixelate 2 and 3 one pixel apart), and elastic's affine jitter shrinks with
    severity (0.08 -> 0.03 of the side), so its change decreases."""
    for corruption_type in ("frosted_glass_blur", "frost", "pixelate"):
        assert mean_abs_change(corruption_type, 5, shape) > mean_abs_change(corruption_type, 1, shape) + 1.0
    assert mean_abs_change("elastic", 1, shape) > mean_abs_change("elastic", 5, shape) + 1.0


@pytest.mark.parametrize("corruption_type", ["defocus_blur", "frosted_glass_blur", "motion_blur", "zoom_blur",
                                             "elastic", "pixelate"])
def test_blurs_and_warps_keep_a_constant_image(corruption_type):
    image = np.full(RGB, 90, np.uint8)
    for severity in C.SEVERITIES:
        np.testing.assert_array_equal(C.corrupt(image, corruption_type, severity, np.random.default_rng(0)), image)


def test_contrast_by_hand():
    image = np.zeros(RGB, np.uint8)
    image[:16] = 200  # channel mean 100
    out = C.corrupt(image, "contrast", 1, np.random.default_rng(0))  # factor 0.75
    assert set(np.unique(out[:16])) == {175} and set(np.unique(out[16:])) == {25}


def test_brightness_matches_a_colorsys_hsv_round_trip():
    image = np.random.default_rng(0).integers(0, 256, RGB, dtype=np.uint8)
    image[0, 0] = 0  # black: hue and saturation undefined, becomes grey at the new value
    for severity, shift in zip(C.SEVERITIES, (0.05, 0.1, 0.15, 0.2, 0.3)):
        expected = np.empty(RGB)
        for index in np.ndindex(RGB[:2]):
            h, s, v = colorsys.rgb_to_hsv(*(image[index] / 255.0))
            expected[index] = colorsys.hsv_to_rgb(h, s, min(v + shift, 1.0))
        out = C.corrupt(image, "brightness", severity, np.random.default_rng(0))
        assert np.abs(out.astype(int) - np.rint(expected * 255)).max() <= 1
    assert C.corrupt(image, "brightness", 4, np.random.default_rng(0))[0, 0].tolist() == [51, 51, 51]


def test_noise_statistics_on_grey():
    grey = np.full((64, 64, 3), 128, np.uint8)
    for severity, std in ((1, 0.04), (5, 0.10)):
        out = C.corrupt(grey, "gaussian_noise", severity, np.random.default_rng(0)).astype(float)
        assert out.std() == pytest.approx(std * 255, rel=0.05)
        assert out.mean() == pytest.approx(128, abs=1.0)
    for severity, photons in ((1, 500), (5, 50)):
        out = C.corrupt(grey, "shot_noise", severity, np.random.default_rng(0)).astype(float)
        assert out.std() == pytest.approx(np.sqrt(128 / 255 / photons) * 255, rel=0.05)
    for severity, amount in ((1, 0.01), (5, 0.07)):
        out = C.corrupt(grey, "impulse_noise", severity, np.random.default_rng(0))
        flipped = np.mean((out == 0) | (out == 255))
        assert flipped == pytest.approx(amount, abs=4 * np.sqrt(amount / out.size))
        assert set(np.unique(out)) == {0, 128, 255}


def test_zoom_blur_equals_the_mean_of_scipy_centre_zooms():
    def clipped_zoom(x, factor):  # the reference's clipped zoom, square images
        h = x.shape[0]
        crop = int(np.ceil(h / factor))
        top = (h - crop) // 2
        zoomed = ndimage.zoom(x[top:top + crop, top:top + crop], (factor, factor, 1), order=1)
        trim = (zoomed.shape[0] - h) // 2
        return zoomed[trim:trim + h, trim:trim + h]

    image = synthetic(RGB, 3)
    x = image / 255.0
    for severity, end in zip(C.SEVERITIES, (1.06, 1.11, 1.16, 1.21, 1.26)):
        factors = np.arange(1, end, 0.01)  # as in make_cifar_c.py, float steps included
        expected = (x + sum(clipped_zoom(x, f) for f in factors)) / (len(factors) + 1)
        out = C.corrupt(image, "zoom_blur", severity, np.random.default_rng(0))
        assert np.abs(out.astype(int) - np.rint(expected * 255)).max() <= 1


def test_glass_blur_swaps_equal_sequential_pixel_swaps():
    """Severity 1 blurs with sigma 0.05 (a 1-tap kernel), so only the swaps act: visit pixels
    bottom-right to top-left, swap each with the neighbour at an offset in {-1, 0}^2."""
    image = synthetic(RGB, 4)
    offsets = np.random.default_rng(5).integers(-1, 1, size=(30 * 30, 2))
    expected = image.copy()
    k = 0
    for h in range(31, 1, -1):
        for w in range(31, 1, -1):
            dy, dx = offsets[k]
            k += 1
            expected[h, w], expected[h + dy, w + dx] = expected[h + dy, w + dx].copy(), expected[h, w].copy()
    np.testing.assert_array_equal(C.corrupt(image, "frosted_glass_blur", 1, np.random.default_rng(5)), expected)


def test_motion_blur_impulse_response_is_a_one_sided_gaussian():
    dot = np.zeros((33, 33, 1))
    dot[16, 16] = 1.0
    radius, sigma = 6, 2.0
    weights = np.exp(-np.arange(13) ** 2 / (2 * sigma**2))
    weights /= weights.sum()
    along_row = C._motion_blur(dot, radius, sigma, angle=0.0)[..., 0]
    np.testing.assert_allclose(along_row[16, 16 - np.arange(13)], weights)
    assert along_row.sum() == pytest.approx(1.0)
    along_col = C._motion_blur(dot, radius, sigma, angle=90.0)[..., 0]
    np.testing.assert_allclose(along_col[16 - np.arange(13), 16], weights)


def test_plasma_fractal_range_and_smoothness():
    def roughness(decay):
        p = C.plasma_fractal(28, decay, np.random.default_rng(0))
        return np.abs(np.diff(p, axis=0)).mean(), p

    rough, p = roughness(1.75)
    smooth, _ = roughness(3.0)
    assert p.shape == (32, 32) and p.min() == 0.0 and p.max() == 1.0
    assert smooth < rough


def test_frost_textures_are_fixed_and_crops_random():
    np.testing.assert_array_equal(C.frost_textures(256), C.frost_textures.__wrapped__(256))
    image = synthetic(RGB, 0)
    outs = [C.corrupt(image, "frost", 3, np.random.default_rng(seed)) for seed in range(3)]
    assert not np.array_equal(outs[0], outs[1]) and not np.array_equal(outs[1], outs[2])


@pytest.mark.parametrize("bad", ["gaussian", "glass_blur", ""])
def test_unknown_type_lists_the_valid_ones(bad):
    with pytest.raises(ValueError, match="valid types: gaussian_noise, shot_noise.*jpeg_compression"):
        C.corrupt(synthetic(RGB, 0), bad, 1, np.random.default_rng(0))


@pytest.mark.parametrize("bad", [0, 6, -1, 2.0, True, "3"])
def test_severity_outside_one_to_five(bad):
    with pytest.raises(ValueError, match=r"severity must be an integer in \(1, 2, 3, 4, 5\)"):
        C.corrupt(synthetic(RGB, 0), "fog", bad, np.random.default_rng(0))


@pytest.mark.parametrize("image, message", [
    (np.zeros((32, 32, 3), np.float32), "uint8"),
    (np.zeros((32, 32), np.uint8), "HxWxC"),
    (np.zeros((32, 32, 4), np.uint8), "C in"),
    (np.zeros((16, 32, 3), np.uint8), ">= 28"),
])
def test_bad_images(image, message):
    with pytest.raises(ValueError, match=message):
        C.corrupt(image, "fog", 1, np.random.default_rng(0))


def test_rng_must_be_a_generator():
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        C.corrupt(synthetic(RGB, 0), "fog", 1, 0)


def test_corrupt_images_draws_in_order_so_prefixes_agree():
    images = np.stack([synthetic(GRAY, seed) for seed in range(3)])
    full = C.corrupt_images(images, "snow", 2, np.random.default_rng(1))
    prefix = C.corrupt_images(images[:2], "snow", 2, np.random.default_rng(1))
    np.testing.assert_array_equal(full[:2], prefix)
    rng = np.random.default_rng(1)
    np.testing.assert_array_equal(full, np.stack([C.corrupt(i, "snow", 2, rng) for i in images]))


# ----------------------------------------------------------------------------- generation

TYPES, LEVELS = ["gaussian_noise", "frosted_glass_blur"], [1, 4]


def write_bases(source, num_images=6):
    """Tiny prepared `cifar10` and `fashion_mnist` (`num_images` test images each) in TFDS format."""
    import tensorflow_datasets as tfds
    from uncertainty_baselines.datasets import local_builders as lb

    for builder_cls, shape, names in ((lb.LocalCifar10, RGB, lb.CIFAR10_CLASSES), (lb.LocalFashionMnist, GRAY, None)):
        images = [synthetic(shape, seed) for seed in range(num_images)]
        records = [lb.ImageRecord(f"test_{i}", i % 3, lambda image=image: image) for i, image in enumerate(images)]
        builder = builder_cls(data_dir=str(source), splits={"test": records}, class_names=names)
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    return source


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    return write_bases(tmp_path_factory.mktemp("base"))


def read_config(name, config, data_dir):
    import tensorflow_datasets as tfds
    builder = tfds.builder(name, config=config, data_dir=str(data_dir))
    examples = [(int(e["label"]), e["image"].tobytes()) for e in tfds.as_numpy(builder.as_dataset(split="test"))]
    return builder, sorted(examples)


def expected_config(base_dir, base_name, corruption_type, severity, seed=0):
    """The documented scheme: images in file order, rng default_rng([seed, type index, severity])."""
    from uncertainty_baselines.datasets.corrupted_builder import load_base_test
    images, labels, _ = load_base_test(base_name, base_dir)
    rng = np.random.default_rng([seed, list(C.CORRUPTIONS).index(corruption_type), severity])
    return sorted((int(label), image.tobytes())
                  for label, image in zip(labels, C.corrupt_images(images, corruption_type, severity, rng)))


def test_generate_fashion_mnist_corrupted(base_dir, tmp_path):
    from uncertainty_baselines.datasets.corrupted_builder import prepare_corrupted
    out = prepare_corrupted("fashion_mnist", base_dir, tmp_path, corruption_types=TYPES, severities=LEVELS,
                            num_workers=1)
    assert out == tmp_path / "fashion_mnist_corrupted"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fashion_mnist_corrupted"]  # no staging left
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{t}_{s}" for t in TYPES for s in LEVELS)
    for corruption_type in TYPES:
        for severity in LEVELS:
            builder, examples = read_config("fashion_mnist_corrupted", f"{corruption_type}_{severity}", tmp_path)
            assert examples == expected_config(base_dir, "fashion_mnist", corruption_type, severity)
    assert builder.info.features["image"].shape == GRAY
    assert builder.info.features["label"].names[:2] == ["T-shirt/top", "Trouser"]
    assert list(builder.info.splits) == ["test"]


def test_generate_cifar10_corrupted_in_two_workers_loads_like_tfds(base_dir, tmp_path, capsys):
    import tensorflow_datasets as tfds
    from uncertainty_baselines.datasets.corrupted_builder import prepare_corrupted
    prepare_corrupted("cifar10", base_dir, tmp_path, corruption_types=TYPES, severities=LEVELS, num_workers=2)
    # Workers finish in any order: every config is reported once and the count reaches 4/4.
    out = capsys.readouterr().out
    assert "(4/4 configs)" in out
    for corruption_type in TYPES:
        for severity in LEVELS:
            assert out.count(f"cifar10_corrupted/{corruption_type}_{severity} written") == 1
    loaded = tfds.load("cifar10_corrupted/gaussian_noise_1", data_dir=str(tmp_path), split="test")
    assert len(loaded) == 6
    for corruption_type in TYPES:
        for severity in LEVELS:
            builder, examples = read_config("cifar10_corrupted", f"{corruption_type}_{severity}", tmp_path)
            assert examples == expected_config(base_dir, "cifar10", corruption_type, severity)
    assert type(builder).__name__ == "Cifar10Corrupted" and str(builder.version) == "1.0.0"

    # A second run keeps what is there.
    marker = tmp_path / "cifar10_corrupted" / "gaussian_noise_1" / "1.0.0" / "dataset_info.json"
    before = marker.stat().st_mtime_ns
    prepare_corrupted("cifar10", base_dir, tmp_path, corruption_types=["gaussian_noise"], severities=[1])
    assert "already prepared" in capsys.readouterr().out
    assert marker.stat().st_mtime_ns == before


def test_a_config_from_another_base_or_seed_is_refused_unless_overwrite(base_dir, tmp_path):
    import json
    from uncertainty_baselines.datasets.corrupted_builder import base_test_fingerprint, load_base_test, prepare_corrupted
    from uncertainty_baselines.datasets.prepare import PreparedMismatchError
    subset = write_bases(tmp_path / "subset", num_images=4)
    out = tmp_path / "out"
    prepare_corrupted("fashion_mnist", subset, out, corruption_types=["gaussian_noise"], severities=[1], num_workers=1)
    config = out / "fashion_mnist_corrupted" / "gaussian_noise_1" / "1.0.0"
    record = json.loads((config / "ub_prepared.json").read_text())
    images, labels, _ = load_base_test("fashion_mnist", subset)
    assert record["source_fingerprint"] == base_test_fingerprint("fashion_mnist", images, labels)
    assert record["source_fingerprint"]["test_examples"] == 4 and record["options"] == {"seed": 0}
    assert record["examples"] == {"test": 4}
    with pytest.raises(PreparedMismatchError, match=r"fashion_mnist_corrupted/gaussian_noise_1 at .* it was prepared "
                                                    r"from .*subset \(base fashion_mnist, test_examples 4, sha256 .*\), "
                                                    r"not from .*base.* \(base fashion_mnist, test_examples 6"):
        prepare_corrupted("fashion_mnist", base_dir, out, corruption_types=["gaussian_noise"], severities=[1])
    with pytest.raises(PreparedMismatchError, match=r"it was prepared with \{'seed': 0\}, not \{'seed': 1\}"):
        prepare_corrupted("fashion_mnist", subset, out, corruption_types=["gaussian_noise"], severities=[1], seed=1)
    prepare_corrupted("fashion_mnist", base_dir, out, corruption_types=["gaussian_noise"], severities=[1],
                      num_workers=1, overwrite=True)
    assert len(read_config("fashion_mnist_corrupted", "gaussian_noise_1", out)[1]) == 6


def test_stale_staging_of_a_killed_generation_is_removed(base_dir, tmp_path, capsys):
    from uncertainty_baselines.datasets.corrupted_builder import prepare_corrupted
    (tmp_path / ".prepare-fashion_mnist_corrupted-killed" / "half").mkdir(parents=True)
    prepare_corrupted("fashion_mnist", base_dir, tmp_path, corruption_types=["contrast"], severities=[2],
                      num_workers=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fashion_mnist_corrupted"]
    assert "-killed (0.0 MiB), left by an interrupted preparation" in capsys.readouterr().out


def test_a_failure_leaves_nothing_behind(base_dir, tmp_path, monkeypatch):
    from uncertainty_baselines.datasets import corrupted_builder
    calls = []
    real = corrupted_builder._corrupt_config

    def failing(*args):
        calls.append(args)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(*args)

    monkeypatch.setattr(corrupted_builder, "_corrupt_config", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        corrupted_builder.prepare_corrupted("fashion_mnist", base_dir, tmp_path, corruption_types=TYPES,
                                            severities=[1], num_workers=1)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs, message", [
    ({"corruption_types": ["glass_blur"]}, "valid types: gaussian_noise"),
    ({"severities": [0]}, "severity must be"),
    ({"severities": []}, "at least one"),
    ({"num_workers": 0}, "num_workers"),
])
def test_bad_generation_arguments_fail_before_any_work(kwargs, message, tmp_path):
    from uncertainty_baselines.datasets.corrupted_builder import prepare_corrupted
    with pytest.raises(ValueError, match=message):
        prepare_corrupted("cifar10", tmp_path / "missing", tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_unprepared_base_names_the_prepare_command(tmp_path):
    from uncertainty_baselines.datasets.corrupted_builder import prepare_corrupted
    for base in ("fashion_mnist", "no_such_set"):
        with pytest.raises(ValueError, match=f"{base} is not prepared in .*datasets.prepare {base}"):
            prepare_corrupted(base, tmp_path, tmp_path / "out")
