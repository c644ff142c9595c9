"""JAX pytrees in the suite's checkpoint format (`runs.checkpoint`: atomic `ckpt-<step>/`
folders of `.npz` files with a sha256 manifest, fallback from a corrupt latest).

A pytree is stored as one `.npz` of named arrays; the name of a leaf is its key path joined
with '/' (dict keys, attribute names of optax's named-tuple states, sequence indices), e.g.
`Transformer/encoderblock_0/MlpBlock_0/Dense_0/kernel` for a parameter (big_vision's own
naming, so a run's `params.npz` is itself a big_vision-layout checkpoint) or
`0/mu/head/bias` for an Adam moment. Names are a function of the tree's structure, not of
leaf order or of the process, so a restart (or another program) restores by name; restoring
checks every name and shape against the template before anything is used.
"""
from __future__ import annotations

import pathlib
from typing import Any, Mapping

import jax
import numpy as np

from uncertainty_baselines.runs import checkpoint


def key_name(path: tuple[Any, ...]) -> str:
    """'a/b/0/c' for a jax key path."""
    parts = []
    for entry in path:
        for attr in ("key", "name", "idx"):
            if hasattr(entry, attr):
                parts.append(str(getattr(entry, attr)))
                break
        else:
            parts.append(str(entry))
    return "/".join(parts)


def flatten(tree: Any) -> dict[str, np.ndarray]:
    """{key path: host array} of every leaf of `tree`."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    flat = {}
    for path, leaf in leaves:
        name = key_name(path)
        if name in flat:
            raise ValueError(f"two leaves of the tree are both named {name!r}")
        flat[name] = np.asarray(jax.device_get(leaf))
    return flat


def unflatten_like(template: Any, arrays: Mapping[str, np.ndarray], what: str) -> Any:
    """`template`'s structure with the leaves of `arrays` (by name), after checking that the
    names and shapes agree exactly; dtypes are cast to the template's."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    names = [key_name(path) for path, _ in leaves]
    missing = [n for n in names if n not in arrays]
    unexpected = sorted(set(arrays) - set(names))
    if missing or unexpected:
        raise ValueError(f"{what}: the checkpoint does not match the model: missing {missing[:5]}"
                         f"{' ...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
                         f"{' ...' if len(unexpected) > 5 else ''}")
    bad = [f"{n}: checkpoint {arrays[n].shape}, model {np.shape(leaf)}"
           for n, (_, leaf) in zip(names, leaves) if tuple(arrays[n].shape) != tuple(np.shape(leaf))]
    if bad:
        raise ValueError(f"{what}: shapes differ: {'; '.join(bad[:5])}")
    values = [np.asarray(arrays[n]).astype(leaf.dtype, copy=False) if hasattr(leaf, "dtype") else arrays[n]
              for n, (_, leaf) in zip(names, leaves)]
    return jax.tree_util.tree_unflatten(treedef, values)


def save(directory: str | pathlib.Path, step: int, trees: Mapping[str, Any], state: Mapping[str, Any]) -> pathlib.Path:
    """Checkpoint `ckpt-<step>` of named pytrees (`{"params": ..., "opt_state": ...}` ->
    params.npz, opt_state.npz) with JSON `state` in the manifest."""
    return checkpoint.save(directory, step, {name: flatten(tree) for name, tree in trees.items()}, state)


def restore_latest(directory: str | pathlib.Path, templates: Mapping[str, Any]
                   ) -> tuple[dict[str, Any], int, dict[str, Any]] | None:
    """(trees shaped like `templates`, step, manifest state) of the newest checkpoint that
    verifies, or None when there is none."""
    found = checkpoint.restore_latest(directory)
    if found is None:
        return None
    trees = {name: unflatten_like(template, found.parts[name], f"{found.path.name}/{name}.npz")
             for name, template in templates.items()}
    return trees, found.step, dict(found.state)
