"""The two full-size models, built once per session (building them is the slow part)."""
import pytest

import uncertainty_baselines as ub


@pytest.fixture(scope="session")
def wrn_28_10():
    return ub.models.get("wide_resnet", input_shape=(32, 32, 3), depth=28,
                         width_multiplier=10, num_classes=10)


@pytest.fixture(scope="session")
def resnet50_imagenet():
    return ub.models.get("resnet50")
