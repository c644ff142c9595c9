"""ml_collections experiment configs: a Python file defining `get_config()`, overridden on the
command line with `--config.<field>=<value>` (ml_collections.config_flags).

Bad input fails here, before any data is read or anything written, with one message naming
the file or field: a missing file, a file without `get_config` (or one returning no
ConfigDict), an override of a field the config does not have (with the closest names), or a
value of the wrong type (with the field's type and its value in the file).
"""
from __future__ import annotations

import difflib
import importlib.util
import pathlib
import re
import sys
from typing import Any, Sequence

import ml_collections
from absl import flags
from ml_collections import config_flags


class ConfigError(ValueError):
    """The config file or an override is invalid; the message names the file or field."""


def load_config_file(path: str | pathlib.Path) -> ml_collections.ConfigDict:
    """`get_config()` of the Python file at `path`, checked to be a ConfigDict."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    spec = importlib.util.spec_from_file_location(f"_ub_config_{abs(hash(str(path.resolve())))}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # A config file is user code: report any failure as its own.
        raise ConfigError(f"config file {path} failed to import: {type(e).__name__}: {e}") from e
    get_config = getattr(module, "get_config", None)
    if not callable(get_config):
        raise ConfigError(f"config file {path} does not define get_config(); an experiment config is a "
                          "Python file with `def get_config() -> ml_collections.ConfigDict`")
    config = get_config()
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(f"get_config() of {path} returned {type(config).__name__}, not an "
                          "ml_collections.ConfigDict")
    return config


def split_config_args(argv: Sequence[str]) -> tuple[str | None, list[str], list[str]]:
    """(config path, `--config.<field>=value` overrides, the other arguments) of a command
    line (argv[0] excluded); `--config PATH` is normalised to `--config=PATH`. A field given
    twice keeps its last value (config_flags would concatenate repeated tuple overrides)."""
    path, overrides, rest = None, [], []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--config" and i + 1 < len(args):
            path, i = args[i + 1], i + 2
            continue
        if arg.startswith("--config="):
            path = arg.split("=", 1)[1]
        elif arg.startswith("--config."):
            overrides.append(arg)
        else:
            rest.append(arg)
        i += 1
    last = {arg.split("=", 1)[0]: arg for arg in overrides}
    return path, list(last.values()), rest


def check_override_fields(config: ml_collections.ConfigDict, overrides: Sequence[str], source: str) -> None:
    """ConfigError naming the first override whose field the config does not have."""
    for arg in overrides:
        dotted = arg[len("--config."):].split("=", 1)[0]
        node: Any = config
        walked = []
        for part in dotted.split("."):
            if not isinstance(node, ml_collections.ConfigDict) or part not in node:
                where = "config." + ".".join(walked) if walked else "the config"
                fields = sorted(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
                close = difflib.get_close_matches(part, fields, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"--config.{dotted}: {where} (from {source}) has no field {part!r}{hint} "
                                  f"Its fields: {', '.join(fields) or 'none (not a group)'}")
            node = node[part]
            walked.append(part)


def parse_config(argv: Sequence[str]) -> ml_collections.ConfigDict:
    """The config of a command line: `--config=PATH` plus its `--config.<field>=` overrides
    (argv[0] excluded; other arguments are ignored). Raises ConfigError."""
    path, overrides, _ = split_config_args(argv)
    if path is None:
        raise ConfigError("--config=PATH is required (an experiment config file defining get_config())")
    defaults = load_config_file(path)
    check_override_fields(defaults, overrides, path)
    argv = ["prog", f"--config={path}", *overrides]
    values = flags.FlagValues()
    holder = config_flags.DEFINE_config_file("config", None, "Experiment config file.", flag_values=values,
                                             lock_config=True, sys_argv=argv)
    try:
        values(argv)
    except flags.Error as e:
        raise ConfigError(_type_error(str(e), defaults)) from None
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"config {path}: {e}") from None
    return holder.value


def _type_error(message: str, defaults: ml_collections.ConfigDict) -> str:
    """An override's parse error with the field's type and its value in the file."""
    found = re.search(r"--config\.([\w.]+)=(.*?): (.*)", message, flags=re.S)
    if not found:
        return message
    field, value, why = found.groups()
    default = defaults
    for part in field.split("."):
        default = default[part]
    return (f"--config.{field}={value}: wrong type, the field is {type(default).__name__} "
            f"(the file sets {default!r}): {why.strip()}")


def flatten(config: ml_collections.ConfigDict | dict, prefix: str = "") -> dict[str, Any]:
    """{'model.width': 64, ...}: a config as flat JSON-ready values (tuples become lists)."""
    flat: dict[str, Any] = {}
    for key, value in sorted((config.items() if hasattr(config, "items") else [])):
        name = f"{prefix}{key}"
        if isinstance(value, (ml_collections.ConfigDict, dict)):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = list(value) if isinstance(value, tuple) else value
    return flat


def exit_on_error(error: Exception, program: str | None = None) -> None:
    """Print `error` as one `<program>: error: ...` line on stderr and exit with status 2."""
    program = program or pathlib.Path(sys.argv[0]).name
    print(f"{program}: error: {error}", file=sys.stderr)
    sys.exit(2)
