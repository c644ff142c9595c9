"""Uncertainty Baselines: datasets, models, layers and metrics for uncertainty and robustness.

Import as ``import uncertainty_baselines as ub``. Submodules load on first use, so
``ub.metrics`` (pure NumPy) does not pull in TensorFlow.
"""
import importlib

__version__ = "0.1.0"
_SUBMODULES = ("datasets", "layers", "metrics", "models", "runs", "training", "jax_training", "sanity", "release",
               "report", "sweep")


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
