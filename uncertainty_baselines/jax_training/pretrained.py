"""Pretrained ViT weights in big_vision's `.npz` layout, for fine-tuning (nothing is downloaded).

big_vision writes a checkpoint with `np.savez` of the flattened parameter tree: one array
per parameter named by its module path joined with '/' (`embedding/kernel`
[ph, pw, C, D], `pos_embedding` [1, N, D], `cls` [1, 1, D],
`Transformer/encoderblock_<i>/MultiHeadDotProductAttention_0/query/kernel` [D, heads, D/heads],
..., `head/kernel` [D, K]); a checkpoint with optimizer state holds them under `params/`
(or `opt/target/` for the old Flax optimizer), and bfloat16 arrays are stored as 2-byte
void. Older ViT releases (google-research/vision_transformer) use pre-linen module numbers
(`LayerNorm_2`, `MlpBlock_3`, `MultiHeadDotProductAttention_1`), keep the position
embedding at `Transformer/posembed_input/pos_embedding` and fold the class token's position
into it (N = grid**2 + 1). `read_big_vision_npz` undoes all of these, as big_vision's own
`fix_old_checkpoints` does, and `load_pretrained` merges the result into a freshly
initialised model:

* every model parameter must come from the checkpoint with the model's exact shape, except
  those matching a `dont_load` pattern (default: the head, which a new task replaces) and
  BatchEnsemble fast weights absent from the checkpoint (a deterministic checkpoint loads
  into a BatchEnsemble model: shared kernels loaded, fast weights kept at their init);
* two shape changes are allowed, as in fine-tuning: a per-member BatchEnsemble bias [M, n]
  from a deterministic bias [n] (copied to every member), and the position embedding of
  another grid (bilinear resampling, big_vision's "high-res fine-tuning");
* anything else (a missing parameter, another shape) is an error that names every
  offending parameter with both shapes, raised before training starts.
"""
from __future__ import annotations

import dataclasses
import pathlib
import re
from collections import defaultdict
from typing import Any, Mapping, Sequence

import numpy as np

from uncertainty_baselines.jax_training import checkpoints
from uncertainty_baselines.runs.checkpoint import sha256_file

DEFAULT_DONT_LOAD: tuple[str, ...] = ("head/.*",)
_NUMBERED = re.compile(r"^(.*)_(\d+)$")


class PretrainedError(ValueError):
    """A pretrained checkpoint does not fit the model; the message names every parameter."""


@dataclasses.dataclass
class LoadReport:
    """What `load_pretrained` did: for the run record."""
    path: str
    sha256: str
    loaded: list[str]
    kept_init: list[str]
    resampled: list[str]
    unused: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "num_loaded": len(self.loaded),
                "kept_init": self.kept_init, "resampled": self.resampled, "unused": self.unused}


def recover_dtype(array: np.ndarray) -> np.ndarray:
    """float32 of a stored array; bfloat16 (saved by NumPy as 2-byte void) decoded first."""
    if array.dtype.kind == "V" and array.dtype.itemsize == 2:
        import ml_dtypes  # Installed with jax.
        array = array.view(ml_dtypes.bfloat16)
    return array.astype(np.float32) if array.dtype.kind in "fV" else array


def read_big_vision_npz(path: str | pathlib.Path) -> dict[str, np.ndarray]:
    """The parameters of a big_vision (or vision_transformer) `.npz`, as {'a/b/c': float32
    array} in today's big_vision naming (see the module docstring)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise PretrainedError(f"pretrained checkpoint {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as npz:
            flat = {k: recover_dtype(npz[k]) for k in npz.files}
    except (OSError, ValueError) as e:
        raise PretrainedError(f"pretrained checkpoint {path} is not a readable .npz: {e}") from None
    for prefix in ("params/", "opt/target/"):
        if any(k.startswith(prefix) for k in flat):
            flat = {k[len(prefix):]: v for k, v in flat.items() if k.startswith(prefix)}
            break
    flat = _renumber_pre_linen(flat)
    for old in ("Transformer/posembed_input/pos_embedding", "Transformer/pos_embedding"):
        if old in flat:
            flat["pos_embedding"] = flat.pop(old)
    posemb = flat.get("pos_embedding")
    if posemb is not None and posemb.ndim == 3:
        grid = int(np.sqrt(posemb.shape[1]))
        if grid * grid + 1 == posemb.shape[1]:  # Class token's position folded in: move it to cls.
            flat["pos_embedding"] = posemb[:, 1:]
            if "cls" in flat:
                flat["cls"] = flat["cls"] + posemb[:, :1]
    return flat


def _renumber_pre_linen(flat: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Pre-linen names to linen ones: under each parent, the children `Type_<n>` of one type
    are renumbered 0, 1, ... in order of n (LayerNorm_0, LayerNorm_2 -> LayerNorm_0,
    LayerNorm_1; MlpBlock_3 -> MlpBlock_0), which leaves linen names unchanged."""
    children: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for key in flat:
        parts = key.split("/")
        for depth in range(len(parts) - 1):
            children[tuple(parts[:depth])].add(parts[depth])
    renames: dict[tuple[tuple[str, ...], str], str] = {}
    for parent, names in children.items():
        by_type: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for name in names:
            m = _NUMBERED.match(name)
            if m:
                by_type[m.group(1)].append((int(m.group(2)), name))
        for kind, numbered in by_type.items():
            for new, (_, name) in enumerate(sorted(numbered)):
                renames[(parent, name)] = f"{kind}_{new}"
    out = {}
    for key, value in flat.items():
        parts = key.split("/")
        new_parts = [renames.get((tuple(parts[:i]), p), p) if i < len(parts) - 1 else p
                     for i, p in enumerate(parts)]
        out["/".join(new_parts)] = value
    return out


def resample_posemb(old: np.ndarray, new_shape: Sequence[int]) -> np.ndarray:
    """A [1, g*g, D] position embedding resampled bilinearly to [1, n*n, D]."""
    import scipy.ndimage
    old_grid, new_grid = int(np.sqrt(old.shape[1])), int(np.sqrt(new_shape[1]))
    if old_grid ** 2 != old.shape[1] or new_grid ** 2 != new_shape[1] or old.shape[2] != new_shape[2]:
        raise ValueError(f"cannot resample a position embedding {old.shape} to {tuple(new_shape)}")
    grid = old.reshape(old_grid, old_grid, -1)
    zoom = (new_grid / old_grid, new_grid / old_grid, 1)
    return scipy.ndimage.zoom(grid, zoom, order=1).reshape(1, new_grid * new_grid, -1).astype(old.dtype)


def load_pretrained(params: Any, path: str | pathlib.Path, *,
                    dont_load: Sequence[str] = DEFAULT_DONT_LOAD) -> tuple[Any, LoadReport]:
    """`params` (a model's initial parameter tree) with the weights of the big_vision
    checkpoint at `path` merged in (rules in the module docstring). Raises PretrainedError
    naming every parameter that does not fit, before returning anything."""
    patterns = [re.compile(p) for p in dont_load]
    source = read_big_vision_npz(path)
    target = checkpoints.flatten(params)
    merged, errors = {}, []
    loaded, kept, resampled = [], [], []
    for name, init in target.items():
        if any(p.fullmatch(name) for p in patterns):
            merged[name] = init
            kept.append(name)
            continue
        if name not in source:
            if "fast_weight_" in name.rsplit("/", 1)[-1]:
                merged[name] = init
                kept.append(name)
            else:
                errors.append(f"{name}: missing from the checkpoint (model shape {init.shape})")
            continue
        value = source[name]
        if value.shape == init.shape:
            merged[name] = value
        elif init.ndim == value.ndim + 1 and init.shape[1:] == value.shape and name.endswith("/bias") \
                and _is_batchensemble(name, target):
            merged[name] = np.broadcast_to(value, init.shape).copy()
        elif name == "pos_embedding" and value.ndim == 3 and init.ndim == 3 and value.shape[2] == init.shape[2]:
            try:
                merged[name] = resample_posemb(value, init.shape)
                resampled.append(f"{name} {value.shape} -> {init.shape}")
            except ValueError as e:
                errors.append(f"{name}: {e}")
                continue
        else:
            errors.append(f"{name}: checkpoint shape {value.shape}, model shape {init.shape}")
            continue
        loaded.append(name)
    if errors:
        raise PretrainedError(f"pretrained checkpoint {path} does not fit the model "
                              f"({len(errors)} parameter(s)): " + "; ".join(errors))
    unused = sorted(set(source) - set(target))
    report = LoadReport(str(path), sha256_file(path), loaded, kept, resampled, unused)
    return checkpoints.unflatten_like(params, merged, f"pretrained {path}"), report


def _is_batchensemble(name: str, target: Mapping[str, np.ndarray]) -> bool:
    """Whether parameter `name` belongs to a BatchEnsemble layer (it has fast weights)."""
    return f"{name.rsplit('/', 1)[0]}/fast_weight_alpha" in target
