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


def test_unknown_kwarg_names_it_the_model_and_the_accepted_ones():
    with pytest.raises(ValueError, match=r"unknown keyword argument\(s\) \['widht', 'zz'\] for "
                                         r"model 'wide_resnet'; accepted: \['input_shape', "
                                         r"'depth', 'width_multiplier', 'num_classes', 'l2'"):
        ub.models.get("wide_resnet", input_shape=(8, 8, 3), depth=10, widht=1, zz=0,
                      num_classes=3)


def test_builders_taking_any_kwargs_are_not_checked(monkeypatch):
    monkeypatch.setattr(models, "MODELS", dict(models.MODELS))
    models.register("echo", lambda **kwargs: kwargs)
    assert ub.models.get("echo", anything=1) == {"anything": 1}


def test_register_accepts_module_function_strings_and_callables(monkeypatch):
    monkeypatch.setattr(models, "MODELS", dict(models.MODELS))
    models.register("wrn_alias", "uncertainty_baselines.models.wide_resnet:wide_resnet")
    assert models.get_builder("wrn_alias") is models.get_builder("wide_resnet")
    models.register("wrn_alias", "uncertainty_baselines.models.wide_resnet:wide_resnet")  # no-op
    with pytest.raises(ValueError, match="'wrn_alias' is already registered"):
        models.register("wrn_alias", "uncertainty_baselines.models.resnet50:resnet50")
    with pytest.raises(ValueError, match="'module:function' or a callable"):
        models.register("bad", "uncertainty_baselines.models.wide_resnet")
