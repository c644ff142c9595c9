"""The model registry: names resolve lazily, unknown names fail with the valid list."""
import pytest

import uncertainty_baselines as ub
from uncertainty_baselines import models


def test_every_registered_name_resolves_to_its_constructor():
    for name in models.MODELS:
        builder = models.get_builder(name)
        assert callable(builder) and builder.__name__ == name


def test_get_passes_keyword_arguments_to_the_constructor():
    model = ub.models.get("wide_resnet", input_shape=(8, 8, 3), depth=10,
                          width_multiplier=1, num_classes=7)
    assert model.output_shape == (None, 7)


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown model 'wrn'.*'mlp'.*'resnet50'.*'wide_resnet'"):
        ub.models.get("wrn")


def test_load_is_the_loading_module_function():
    loading = pytest.importorskip("uncertainty_baselines.models.loading")
    assert ub.models.load is loading.load


def test_unknown_attribute_raises_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        ub.models.nonexistent  # noqa: B018
