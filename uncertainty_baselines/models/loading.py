"""`ub.models.load(run_dir)`: rebuild a trained model from its run record and verified weights.

The run record (`run.json`) names the registry model and its constructor kwargs; the
weights are the model part of the run's latest checkpoint, whose sha256 hashes are checked
against its manifest before anything is assigned. No pickle is involved anywhere.
"""
from __future__ import annotations

import os
import pathlib

import keras

from uncertainty_baselines import models
from uncertainty_baselines.runs import checkpoint
from uncertainty_baselines.runs.run_record import read_run_record


def load(run_dir: str | os.PathLike, checkpoint_path: str | os.PathLike | None = None) -> keras.Model:
    """The model of the run in `run_dir` with the weights of its latest checkpoint.

    `checkpoint_path` selects another checkpoint folder. Raises FileNotFoundError when
    the run has no record or no checkpoint, ValueError when the record names no model,
    and checkpoint.CorruptCheckpointError when a weight file does not match its hash
    (a tampered or truncated checkpoint is refused, never silently replaced).
    """
    run_dir = pathlib.Path(run_dir)
    record = read_run_record(run_dir)
    spec = record.get("model")
    if not spec or "name" not in spec:
        raise ValueError(f"{run_dir}/run.json records no model (expected 'model': {{'name', 'kwargs'}})")
    if checkpoint_path is None:
        found = checkpoint.list_checkpoints(run_dir / checkpoint.SUBDIR)
        if not found:
            raise FileNotFoundError(f"no checkpoint under {run_dir / checkpoint.SUBDIR}")
        checkpoint_path = found[-1]
    ckpt = checkpoint.load(checkpoint_path)
    model = models.get(spec["name"], **spec.get("kwargs", {}))
    checkpoint.assign_arrays(model.variables, ckpt.parts["model"], f"{spec['name']} from {checkpoint_path}")
    return model
