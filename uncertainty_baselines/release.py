"""Publish a finished run as one self-contained, verifiable bundle with a model card.

    python -m uncertainty_baselines.release RUN_DIR --out DIR        # a folder
    python -m uncertainty_baselines.release RUN_DIR --out DIR.tar.gz # one reproducible archive

The bundle (`runs/bundle.py`) holds the final weights, the model spec, the run record, a
sha256 manifest and a generated README.md model card; `ub.models.load(DIR)` verifies and
loads it anywhere, on any Keras backend. A run that is unfinished, was trained from
uncommitted code or recorded non-finite metrics is refused unless `--force`, and then the
card and the manifest say so. Nothing is written unless every check passed or was forced.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Any, Mapping, Sequence

from uncertainty_baselines import datasets
from uncertainty_baselines.runs import bundle, checkpoint, summaries
from uncertainty_baselines.runs.run_record import package_versions, read_run_record


class ReleaseError(ValueError):
    """A run that cannot be released (or not without --force); the message says why."""


def release(run_dir: str | pathlib.Path, out: str | pathlib.Path, *, force: bool = False) -> pathlib.Path:
    """Write the bundle of the finished run in `run_dir` to `out` and return its path."""
    run_dir = pathlib.Path(run_dir)
    try:
        record = read_run_record(run_dir)
    except FileNotFoundError:
        raise ReleaseError(f"{run_dir} has no run.json: the run is unfinished (resume it with its command) "
                           "or not a run directory") from None
    if not record.get("model"):
        raise ReleaseError(f"{run_dir}/run.json records no model spec; it cannot be rebuilt from a bundle")
    found = checkpoint.list_checkpoints(run_dir / checkpoint.SUBDIR)
    if not found:
        raise ReleaseError(f"{run_dir} has no checkpoint (an --eval_only or ensemble-of-runs evaluation has "
                           "no weights of its own: release the trained runs)")
    ckpt = checkpoint.load(found[-1])  # CorruptCheckpointError: never releasable, even forced.
    problems = release_problems(record, ckpt.step)
    if problems and not force:
        raise ReleaseError(f"{run_dir} is not releasable: " + "; ".join(problems)
                           + ". Fix it, or pass --force to release it with these warnings in the card.")
    if "model" not in ckpt.parts:  # A JAX run's checkpoint holds Flax `params` and `opt_state`.
        raise ReleaseError(f"{run_dir}'s checkpoint has no Keras model weights (it holds "
                           f"{sorted(ckpt.parts)}): release bundles are for the Keras baselines; "
                           "a JAX run is reloaded from its own folder")
    weights = ckpt.parts["model"]
    card = model_card(record, num_weights=sum(int(v.size) for v in weights.values()), warnings=problems,
                      bundle_name=pathlib.Path(out).name)
    return bundle.write(out, weights=weights, spec=record["model"], record=record, card=card, warnings=problems)


def release_reference(checkpoint_path: str | pathlib.Path, out: str | pathlib.Path, *,
                      spec: Mapping[str, Any], dataset: str) -> pathlib.Path:
    """Bundle a checkpoint written by the reference suite (imported into our `spec` model by
    `ub.models.import_reference_checkpoint`), so baselines can score it (`--eval_only`)."""
    from uncertainty_baselines import models  # Keras and TensorFlow: only for this import.
    model = models.get(spec["name"], **spec.get("kwargs", {}))
    models.import_reference_checkpoint(checkpoint_path, model)
    source = pathlib.Path(checkpoint_path)
    files = sorted(p for p in (source if source.is_dir() else source.parent).iterdir() if p.is_file() and (
        p.name.startswith(source.name + ".") if not source.is_dir() else p.name == "checkpoint" or
        ".index" in p.name or ".data-" in p.name))
    record = {"model": dict(spec), "method": "imported", "flags": {"dataset": dataset},
              "imported_from": {p.name: checkpoint.sha256_file(p) for p in files},
              "packages": package_versions(), "metrics": {}}
    card = "\n".join([
        f"# {spec['name']} imported from a reference-suite checkpoint", "",
        f"Weights of a checkpoint written by google/uncertainty-baselines (tf.keras 2), read by "
        f"`ub.models.import_reference_checkpoint` into the registry model `{spec['name']}` "
        f"(`{json.dumps(spec, sort_keys=True)}`); every layer's attributes and shapes were checked. "
        f"Intended data: `{dataset}`. Not trained here, not yet evaluated: score it with a baseline's "
        "`--eval_only --checkpoint_dir=<this bundle>`.", "",
        "Source files (sha256):", "", *[f"- `{name}` `{digest}`" for name, digest in
                                        record["imported_from"].items()], "",
        f"Data licence of `{dataset}`: {datasets.LICENCES.get(dataset, 'not recorded here')}", ""])
    return bundle.write(out, weights=checkpoint.variables_to_arrays(model.variables), spec=spec,
                        record=record, card=card)


def release_problems(record: Mapping[str, Any], checkpoint_step: int) -> list[str]:
    """What makes a run unfit to publish as it stands (empty when it is fit)."""
    problems = []
    steps = record.get("steps")
    if steps is not None and steps != checkpoint_step:
        problems.append(f"unfinished: the latest checkpoint is step {checkpoint_step}, the run recorded {steps}")
    git = record.get("git") or {}
    if not git.get("commit"):
        problems.append("the code version is unknown (no git commit recorded)")
    elif git.get("dirty") is not False:
        problems.append(f"trained from uncommitted changes on top of commit {git['commit'][:12]}")
    bad = sorted(k for k, v in record.get("metrics", {}).items() if v is None)
    if bad:
        problems.append(f"non-finite metrics: {', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}")
    return problems


def model_card(record: Mapping[str, Any], *, num_weights: int, warnings: Sequence[str] = (),
               bundle_name: str = "BUNDLE") -> str:
    """The README.md of a bundle: what the model is, how it was made, what it scores,
    what it is for and not for, and the data's licence; every fact from the run record."""
    flags, spec, metrics = record.get("flags", {}), record["model"], record.get("metrics", {})
    dataset, method = flags.get("dataset", "unknown"), record.get("method", "unknown")
    git, hw = record.get("git") or {}, record.get("hardware") or {}
    lines = [f"# {spec['name']} on {dataset} ({method})", ""]
    if warnings:
        lines += ["> **Released with --force despite:**"] + [f"> - {w}" for w in warnings] + [""]
    lines += [
        f"A `{method}` baseline of Uncertainty Baselines: the registry model `{spec['name']}` "
        f"({num_weights:,} stored values: weights and any batch-norm statistics) trained on `{dataset}`. "
        f"The model: {_builder_summary(spec['name'])}", "",
        "```python", "import uncertainty_baselines as ub",
        f'model = ub.models.load("{bundle_name}")  # verifies every sha256 first', "```", "",
        "## How it was made", "",
        "```", record.get("command") or _command_from_flags(flags), "```", "",
        f"- Code: commit `{git.get('commit')}`" + (" (uncommitted changes)" if git.get("dirty") else ""),
        f"- Seed {record.get('seed')}; "
        + "".join(f"{record[k]} {what}, " for k, what in (("steps", "steps"), ("train_examples", "training examples"),
                                                           ("num_replicas", "replica(s)")) if record.get(k))
        + f"wall time {(record.get('wall_time_s') or 0) / 60:.1f} min",
        f"- Hardware: {hw.get('processor')}, {hw.get('usable_cpus') or hw.get('cpu_count')} CPUs, "
        f"{hw.get('memory_gib')} GiB ({hw.get('platform')})",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in sorted((record.get("packages") or {}).items()) if v),
        f"- Data: `{dataset}`{_prepared_from(flags)}; test-set fingerprint `{record.get('data_fingerprint')}` "
        "(sha256 over the evaluated examples: another copy of the data gives another fingerprint)",
        f"- Evaluated on: {_evaluated_on(metrics)}",
        f"- Model spec: `{json.dumps(spec, sort_keys=True)}`", "",
        "## Results", "",
        f"On the full `{dataset}` test set (and the OOD / corrupted sets of the flags), as recorded in "
        f"`run.json` ({len(metrics)} metrics there):", "",
        "| metric | value |", "|---|---|",
    ]
    rows = summaries.headline_metrics(metrics) or sorted((k, v) for k, v in metrics.items() if v is not None)
    lines += [f"| {k} | {v:.4f} |" for k, v in rows]
    lines += [
        "", "## Intended use", "",
        "A research baseline: a reference point for accuracy, calibration and robustness studies on "
        f"`{dataset}`, and a starting point for comparisons under the same protocol.", "",
        "## Known limitations", "",
        f"- Calibration and accuracy were measured on `{dataset}` (and the listed shifted sets) only; "
        "they say little about other data.",
        *([f"- Trained for {flags['train_epochs']} epoch(s): figures are those of this budget, not of "
           "the published long schedules."] if flags.get("train_epochs") else []),
        "- Not evaluated for fairness, safety or any deployed use.", "",
        "## Data licence", "",
        f"`{dataset}`: {datasets.LICENCES.get(dataset, 'not recorded here; check the data source before use')}",
        "",
    ]
    return "\n".join(lines)


def _builder_summary(name: str) -> str:
    """The first sentence of the registry builder's docstring: what the model maps to what."""
    from uncertainty_baselines import models
    doc = " ".join((models.get_builder(name).__doc__ or "").split())
    return doc.split(". ")[0].rstrip(".") + "." if doc else "see `ub.models`."


def _prepared_from(flags: Mapping[str, Any]) -> str:
    """Where the prepared data came from (its `ub_prepared.json`), when the data is still there."""
    for path in sorted(pathlib.Path(flags.get("data_dir") or ".").glob(f"{flags.get('dataset')}/*/ub_prepared.json")):
        try:
            info = json.loads(path.read_text())
            source = info["source_fingerprint"]
            counts = ", ".join(f"{n} {split}" for split, n in info.get("examples", {}).items())
            return (f", prepared from `{pathlib.Path(info['source']).name}` (sha256 `{source['sha256']}`; "
                    f"{counts})")
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return ""


def _evaluated_on(metrics: Mapping[str, Any]) -> str:
    sets = [f"the test set ({int(metrics['test/num_examples']):,} examples)" if "test/num_examples" in metrics
            else "the test set"]
    ood = [k.removeprefix("ood/").removesuffix("_auroc") for k in metrics if k.startswith("ood/") and k.endswith("_auroc")]
    if ood:
        sets.append("OOD sets " + ", ".join(f"`{name}`" for name in sorted(ood)))
    corrupted = [k.removeprefix("test/accuracy_").rsplit("_", 1) for k in metrics
                 if k.startswith("test/accuracy_") and k[-1].isdigit() and "mean_severity" not in k]
    if corrupted:
        kinds, severities = sorted({c[0] for c in corrupted}), sorted({c[1] for c in corrupted})
        sets.append(f"{len(kinds)} corruption types at severity {', '.join(severities)}")
    return "; ".join(sets)


def _command_from_flags(flags: Mapping[str, Any]) -> str:
    """For runs recorded before commands were: the script is unknown, the flags are not."""
    args = " ".join(f"--{k}={','.join(map(str, v)) if isinstance(v, list) else v}"
                    for k, v in sorted(flags.items()) if v is not None)
    return f"python baselines/<dataset>/<method>.py {args}  # script not recorded"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m uncertainty_baselines.release", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="a finished run directory (with run.json and checkpoints/), or with "
                        "--reference_model a reference-suite checkpoint (its folder or prefix)")
    parser.add_argument("--out", required=True, help="the bundle folder, or an archive path ending in .tar.gz")
    parser.add_argument("--force", action="store_true",
                        help="release an unfinished, dirty or non-finite run, with warnings in the card")
    parser.add_argument("--reference_model", type=json.loads, metavar="SPEC",
                        help='import a reference checkpoint into this model: \'{"name": ..., "kwargs": {...}}\'')
    parser.add_argument("--dataset", help="with --reference_model: the data it was trained on")
    args = parser.parse_args(argv)
    if args.reference_model is not None and not args.dataset:
        parser.error("--reference_model needs --dataset")
    try:
        if args.reference_model is not None:
            path = release_reference(args.run_dir, args.out, spec=args.reference_model, dataset=args.dataset)
        else:
            path = release(args.run_dir, args.out, force=args.force)
    except (ReleaseError, FileExistsError, FileNotFoundError, checkpoint.CorruptCheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    manifest = path if path.is_file() else path / bundle.MANIFEST
    print(f"released {args.run_dir} -> {path}\nsha256 of {manifest.name}: {checkpoint.sha256_file(manifest)} "
          "(publish it with the bundle)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
