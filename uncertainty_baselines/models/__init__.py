"""Model registry: `ub.models.get(name, **kwargs)` builds a Keras 3 model that outputs logits.

Entries are "module:function" strings imported on first use, so listing the models does
not import Keras. `ub.models.load(run_dir)` (from `models/loading.py`) rebuilds a trained
model from its run record.
"""
import importlib
from collections.abc import Callable

MODELS: dict[str, str] = {
    "wide_resnet": "uncertainty_baselines.models.wide_resnet:wide_resnet",
    "resnet50": "uncertainty_baselines.models.resnet50:resnet50",
    "mlp": "uncertainty_baselines.models.mlp:mlp",
}


def get_builder(name: str) -> Callable:
    """The constructor registered under `name`; ValueError listing the names if unknown."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid names: {sorted(MODELS)}")
    module, function = MODELS[name].split(":")
    return getattr(importlib.import_module(module), function)


def get(name: str, **kwargs):
    """Builds the model registered under `name` with the constructor's keyword arguments."""
    return get_builder(name)(**kwargs)


def __getattr__(name: str):
    # `load` lives in models/loading.py, which imports TensorFlow; import it on first use.
    if name == "load":
        return importlib.import_module(f"{__name__}.loading").load
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
