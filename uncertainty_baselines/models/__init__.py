"""Model registry: `ub.models.get(name, **kwargs)` builds a Keras 3 model that outputs logits.

Entries are "module:function" strings imported on first use, so listing the models does
not import Keras. A method model is one more entry (`register`): a function of JSON-able
kwargs that passes its layer factories to a base builder, so `ub.models.load(run_dir)`
(from `models/loading.py`) rebuilds it from the name and kwargs in its run record.
`ub.models.import_reference_checkpoint(path, model)` (`models/reference_checkpoint.py`)
assigns a checkpoint written by the reference suite (tf.keras 2) to one of our models.
"""
import importlib
import inspect
from collections.abc import Callable

MODELS: dict[str, str | Callable] = {
    "wide_resnet": "uncertainty_baselines.models.wide_resnet:wide_resnet",
    "wide_resnet_mc_dropout": "uncertainty_baselines.models.wide_resnet:wide_resnet_mc_dropout",
    "wide_resnet_mimo": "uncertainty_baselines.models.wide_resnet:wide_resnet_mimo",
    "wide_resnet_batchensemble": "uncertainty_baselines.models.wide_resnet:wide_resnet_batchensemble",
    "wide_resnet_rank1": "uncertainty_baselines.models.wide_resnet:wide_resnet_rank1",
    "wide_resnet_variational": "uncertainty_baselines.models.wide_resnet:wide_resnet_variational",
    "wide_resnet_sngp": "uncertainty_baselines.models.wide_resnet:wide_resnet_sngp",
    "wide_resnet_heteroscedastic": "uncertainty_baselines.models.wide_resnet:wide_resnet_heteroscedastic",
    "resnet50": "uncertainty_baselines.models.resnet50:resnet50",
    "resnet50_mc_dropout": "uncertainty_baselines.models.resnet50:resnet50_mc_dropout",
    "resnet50_batchensemble": "uncertainty_baselines.models.resnet50:resnet50_batchensemble",
    "resnet50_sngp": "uncertainty_baselines.models.resnet50:resnet50_sngp",
    "mlp": "uncertainty_baselines.models.mlp:mlp",
    "mlp_gaussian": "uncertainty_baselines.models.mlp:mlp_gaussian",
    "mlp_variational_gaussian": "uncertainty_baselines.models.mlp:mlp_variational_gaussian",
    "bert_classifier": "uncertainty_baselines.models.bert:bert_classifier",
    "bert_mc_dropout": "uncertainty_baselines.models.bert:bert_mc_dropout",
    "bert_sngp": "uncertainty_baselines.models.bert:bert_sngp",
}


def register(name: str, builder: str | Callable) -> None:
    """Registers `builder` ("module:function", imported on first use, or a callable) as
    `name`. A name keeps one meaning, since run records refer to models by name: registering
    it again with another builder is a ValueError (the same builder again is a no-op)."""
    if isinstance(builder, str) and builder.count(":") != 1:
        raise ValueError(f"builder must be 'module:function' or a callable, got {builder!r}")
    if MODELS.get(name, builder) != builder:
        raise ValueError(f"model {name!r} is already registered as {MODELS[name]!r}")
    MODELS[name] = builder


def get_builder(name: str) -> Callable:
    """The constructor registered under `name`; ValueError listing the names if unknown."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid names: {sorted(MODELS)}")
    entry = MODELS[name]
    if callable(entry):
        return entry
    module, function = entry.split(":")
    return getattr(importlib.import_module(module), function)


def check_kwargs(name: str, builder: Callable, kwargs: dict) -> None:
    """Raises ValueError naming the kwargs `builder` does not accept, and those it does."""
    params = inspect.signature(builder).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    accepted = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(f"unknown keyword argument(s) {unknown} for model {name!r}; "
                         f"accepted: {accepted}")


def get(name: str, **kwargs):
    """Builds the model registered under `name` with the constructor's keyword arguments."""
    builder = get_builder(name)
    check_kwargs(name, builder, kwargs)
    return builder(**kwargs)


def __getattr__(name: str):
    # `load` lives in models/loading.py, which imports TensorFlow; import it on first use.
    if name == "load":
        return importlib.import_module(f"{__name__}.loading").load
    if name == "import_reference_checkpoint":
        return importlib.import_module(f"{__name__}.reference_checkpoint").import_reference_checkpoint
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
