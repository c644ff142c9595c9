"""Output-directory guard: never mix two different runs in one folder.

A run writes its result-deciding flags to `flags.json` when it starts. Starting again in
the same folder with the same flags resumes it; with other flags it is refused, unless the
caller asks to overwrite, which deletes the folder's contents first. A flag added to the
library after the run started is missing from its `flags.json`: it counts as recorded at
its default (a new flag's default keeps the earlier behaviour), so the run still resumes.
"""
from __future__ import annotations

import json
import os
import pathlib
import shutil
from typing import Any, Iterable, Mapping

from uncertainty_baselines.runs.run_record import write_json_atomic

FLAGS_FILE = "flags.json"


class OutputDirError(ValueError):
    """The output folder holds another run (or other files) and overwriting was not asked for."""


def prepare_output_dir(output_dir: str | os.PathLike, flags: Mapping[str, Any], *,
                       overwrite: bool = False, ignore: Iterable[str] = (),
                       keep: Iterable[str] = (), defaults: Mapping[str, Any] | None = None) -> bool:
    """Create or reuse `output_dir` for a run with `flags`; return True when resuming.

    `ignore` names flags that do not change the result (e.g. `output_dir`, `overwrite`,
    logging intervals) and may differ between the first start and a restart. `keep` names
    files that are not part of a run (the folder's lock): they neither make the folder
    count as used nor are deleted by `overwrite`. `defaults` (flag -> default value) fills
    the flags an earlier `flags.json` lacks; a run resumed that way has them recorded.
    Raises OutputDirError naming the differing flags when the folder holds another run and
    `overwrite` is False.
    """
    path = pathlib.Path(output_dir)
    ignored, keep = set(ignore), tuple(keep)
    wanted = _json_round_trip({k: v for k, v in flags.items() if k not in ignored})
    flags_path = path / FLAGS_FILE
    if flags_path.is_file():
        original = json.loads(flags_path.read_text())
        recorded = with_defaults({k: v for k, v in original.items() if k not in ignored}, wanted, defaults or {})
        if recorded == wanted:
            if recorded != original:
                write_json_atomic(flags_path, wanted)
            return True
        if not overwrite:
            raise OutputDirError(
                f"output_dir {path} holds a run with other flags ({describe_differences(recorded, wanted)}); "
                "use the same flags to resume it, another --output_dir, or --overwrite to delete it")
    elif path.is_dir() and any(p.name not in keep for p in path.iterdir()) and not overwrite:
        raise OutputDirError(
            f"output_dir {path} is not empty and holds no {FLAGS_FILE}; refusing to write into it "
            "(choose an empty or new folder, or pass --overwrite to delete its contents)")
    if overwrite and path.is_dir():
        clear(path, keep)
    path.mkdir(parents=True, exist_ok=True)
    write_json_atomic(flags_path, wanted)
    return False


def clear(path: str | os.PathLike, keep: Iterable[str] = ()) -> None:
    """Delete everything in folder `path` except the entries named in `keep`."""
    keep = set(keep)
    for child in pathlib.Path(path).iterdir():
        if child.name in keep:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def with_defaults(recorded: Mapping[str, Any], wanted: Mapping[str, Any],
                  defaults: Mapping[str, Any]) -> dict[str, Any]:
    """`recorded` flags plus, for each flag of `wanted` they lack, its value in `defaults`
    (JSON-round-tripped as `wanted` is), where it has one."""
    added = {k: defaults[k] for k in wanted if k not in recorded and k in defaults}
    return {**recorded, **_json_round_trip(added)}


def describe_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """'name: old -> new' for every key whose value differs, sorted by name."""
    keys = sorted(set(old) | set(new))
    missing = "<unset>"
    return "; ".join(f"{k}: {old.get(k, missing)!r} -> {new.get(k, missing)!r}"
                     for k in keys if old.get(k, missing) != new.get(k, missing))


def _json_round_trip(flags: dict[str, Any]) -> dict[str, Any]:
    """The flags as they read back from disk (tuples become lists), so comparisons hold."""
    try:
        return json.loads(json.dumps(flags))
    except TypeError as e:
        raise ValueError(f"flags must be JSON-serialisable: {e}") from e
