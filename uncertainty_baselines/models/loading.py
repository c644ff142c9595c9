"""`ub.models.load(path)`: rebuild a trained model from a run directory or a release bundle.

A run directory's record (`run.json`) names the registry model and its constructor kwargs;
the weights are the model part of its latest checkpoint. A bundle (`runs/bundle.py`, made
by `python -m uncertainty_baselines.release`) carries the same spec and weights in one
folder or archive. Either way every sha256 is checked before anything is built, all shapes
are checked before anything is assigned, and no pickle or code from the files is run.
"""
from __future__ import annotations

import os
import pathlib
from typing import Any, Mapping

import keras
from absl import logging

from uncertainty_baselines import models
from uncertainty_baselines.runs import bundle, checkpoint
from uncertainty_baselines.runs.run_record import read_run_record


def load(path: str | os.PathLike, checkpoint_path: str | os.PathLike | None = None) -> keras.Model:
    """The model of the run directory or bundle at `path`, with its verified weights.

    For a run directory, the latest checkpoint, or the checkpoint folder `checkpoint_path`.
    Raises FileNotFoundError when a run has no record or no checkpoint, ValueError when the
    spec names no or an unknown model or the weights do not fit it,
    checkpoint.CorruptCheckpointError / bundle.BundleError when a file does not match its
    hash (a tampered or truncated file is refused, never silently replaced).
    """
    path = pathlib.Path(path)
    if bundle.is_bundle(path):
        if checkpoint_path is not None:
            raise ValueError(f"{path} is a release bundle: it holds one set of weights, no checkpoints")
        release = bundle.read(path)
        for warning in release.warnings:
            logging.warning("bundle %s: %s", path, warning)
        return build(release.spec, release.weights, f"bundle {path}")
    record = read_run_record(path)
    if checkpoint_path is None:
        checkpoint_path = checkpoint.latest_path(path / checkpoint.SUBDIR)
    ckpt = checkpoint.load(checkpoint_path)
    return build(record.get("model"), ckpt.parts["model"], f"{path}/run.json with {checkpoint_path}")


def build(spec: Mapping[str, Any] | None, weights: Mapping[str, Any], source: str) -> keras.Model:
    """The registry model of `spec` ({"name", "kwargs"}) with `weights` assigned by position."""
    if not spec or "name" not in spec:
        raise ValueError(f"{source}: no model spec (expected 'model': {{'name', 'kwargs'}})")
    try:
        model = models.get(spec["name"], **spec.get("kwargs", {}))
    except (ValueError, TypeError) as e:
        raise ValueError(f"{source}: cannot build model {spec['name']!r}: {e}") from None
    checkpoint.assign_arrays(model.variables, weights, f"{spec['name']} from {source}")
    return model
