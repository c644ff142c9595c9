"""Random Gaussian / Rademacher images."""
import numpy as np
import pytest

import uncertainty_baselines as ub


def features(name, **kwargs):
    ds = ub.datasets.get(name, split="test", **kwargs)
    return [{k: v.numpy() for k, v in b.items()} for b in ds.load(batch_size=4)]


def test_gaussian_images_are_standard_normal_and_reproducible():
    bs = features("random_gaussian", num_examples=6, image_shape=(16, 16, 3), seed=1)
    x = np.concatenate([b["features"] for b in bs])[np.concatenate([b["mask"] for b in bs]) == 1]
    assert x.shape == (6, 16, 16, 3) and x.dtype == np.float32
    assert abs(x.mean()) < 0.05 and abs(x.std() - 1) < 0.05  # 4,608 draws: 5 sigma bounds
    again = features("random_gaussian", num_examples=6, image_shape=(16, 16, 3), seed=1)
    np.testing.assert_array_equal(bs[0]["features"], again[0]["features"])
    other = features("random_gaussian", num_examples=6, image_shape=(16, 16, 3), seed=2)
    assert not np.array_equal(bs[0]["features"], other[0]["features"])
    assert not np.array_equal(x[0], x[1])


def test_rademacher_images_are_plus_minus_one():
    bs = features("random_rademacher", num_examples=4, image_shape=(32, 32, 3), seed=0)
    x = bs[0]["features"]
    assert set(np.unique(x).tolist()) == {-1.0, 1.0}
    assert abs((x == 1).mean() - 0.5) < 0.03  # 12,288 fair coins: > 6 sigma bound
    np.testing.assert_array_equal(bs[0]["labels"], [-1] * 4)
    ds = ub.datasets.get("random_rademacher", split="test", num_examples=4)
    assert (ds.num_examples, ds.num_classes) == (4, 0)


@pytest.mark.parametrize("kwargs,message", [
    ({"num_examples": 0}, "num_examples must be positive"),
    ({"image_shape": (32, 32)}, "image_shape must be 3 positive ints"),
    ({"split": "train"}, "valid splits: \\['test'\\]"),
])
def test_bad_arguments(kwargs, message):
    kwargs.setdefault("split", "test")
    with pytest.raises(ValueError, match=message):
        ub.datasets.get("random_gaussian", **kwargs)
