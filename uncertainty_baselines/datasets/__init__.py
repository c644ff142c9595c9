"""Datasets by name: ``ub.datasets.get(name, split, **kwargs)`` returns a ``BaseDataset``.

The registry maps each name to a ``"module:Class"`` string that is imported on first use,
so one dataset module failing to import (or not existing yet) does not affect the others.
"""
from __future__ import annotations

import importlib
from typing import Any

from uncertainty_baselines.datasets.base import (BaseDataset, DataNotFoundError,
                                                 TfdsDataset)

_PKG = "uncertainty_baselines.datasets"
_UCI_NAMES = ("uci_boston_housing", "uci_concrete", "uci_energy", "uci_kin8nm", "uci_naval",
              "uci_power_plant", "uci_protein", "uci_wine", "uci_yacht")

_REGISTRY: dict[str, str] = {
    "cifar10": f"{_PKG}.cifar:Cifar10Dataset",
    "cifar100": f"{_PKG}.cifar:Cifar100Dataset",
    "cifar10_corrupted": f"{_PKG}.cifar:Cifar10CorruptedDataset",
    "fashion_mnist_corrupted": f"{_PKG}.mnist:FashionMnistCorruptedDataset",
    "svhn_cropped": f"{_PKG}.svhn:SvhnDataset",
    "mnist": f"{_PKG}.mnist:MnistDataset",
    "fashion_mnist": f"{_PKG}.mnist:FashionMnistDataset",
    "imagenet2012": f"{_PKG}.imagenet:ImageNetDataset",
    "imagenet2012_corrupted": f"{_PKG}.imagenet:ImageNetCorruptedDataset",
    "imagenet_a": f"{_PKG}.imagenet:ImageNetADataset",
    "imagenet_r": f"{_PKG}.imagenet:ImageNetRDataset",
    "imagenet_v2": f"{_PKG}.imagenet:ImageNetV2Dataset",
    "clinc_intent": f"{_PKG}.clinc_intent:ClincIntentDataset",
    "random_gaussian": f"{_PKG}.random_noise:RandomGaussianDataset",
    "random_rademacher": f"{_PKG}.random_noise:RandomRademacherDataset",
    **{name: f"{_PKG}.uci:UCIDataset" for name in _UCI_NAMES},
}
# Classes shared by several names receive the name as the `name` argument.
_PASS_NAME = frozenset(_UCI_NAMES)

DATASETS: tuple[str, ...] = tuple(sorted(_REGISTRY))

_CIFAR = ("no licence published by its creators; cite Krizhevsky (2009), Learning Multiple Layers "
          "of Features from Tiny Images")
_IMAGENET = "the ImageNet terms of access: non-commercial research and educational use only"
# The terms each set is distributed under, for model cards (`python -m uncertainty_baselines.release`).
LICENCES: dict[str, str] = {
    "cifar10": _CIFAR, "cifar100": _CIFAR, "cifar10_corrupted": _CIFAR + " (corruptions generated here)",
    "fashion_mnist": "MIT (Zalando SE, 2017)",
    "fashion_mnist_corrupted": "MIT (Zalando SE, 2017; corruptions generated here)",
    "mnist": "no licence file distributed; Y. LeCun, C. Cortes and C. Burges hold the copyright",
    "svhn_cropped": "non-commercial use only (Netzer et al., 2011)",
    "clinc_intent": "CC BY 3.0 (Larson et al., EMNLP 2019)",
    "random_gaussian": "generated noise, no licence", "random_rademacher": "generated noise, no licence",
    "imagenet2012": _IMAGENET, "imagenet2012_corrupted": _IMAGENET + " (as ImageNet; corruptions by Hendrycks "
                                                                     "and Dietterich, 2019)",
    **{name: "research use as released by its authors (web images; check their release terms)"
       for name in ("imagenet_a", "imagenet_r", "imagenet_v2")},
    **{name: "the UCI Machine Learning Repository's terms (CC BY 4.0)" for name in _UCI_NAMES},
}


def get_class(name: str) -> type[BaseDataset]:
    """The dataset class registered as ``name`` (imports its module)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    module_name, class_name = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def get(name: str, split: str, **kwargs: Any) -> BaseDataset:
    """The ``split`` of dataset ``name``; kwargs go to the dataset's constructor.

    Raises:
      ValueError: unknown name (the message lists the valid names) or invalid arguments.
      DataNotFoundError: the data is not prepared (the message names the prepare command).
    """
    cls = get_class(name)
    if name in _PASS_NAME:
        kwargs["name"] = name
    return cls(split=split, **kwargs)


__all__ = ["BaseDataset", "DATASETS", "LICENCES", "DataNotFoundError", "TfdsDataset", "get", "get_class"]
