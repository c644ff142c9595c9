"""python -m uncertainty_baselines.sweep {run,commands,collect,status} DEFINITION --out DIR"""
from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Any, Sequence

from uncertainty_baselines import sweep as sweep_lib
from uncertainty_baselines.sweep import collect, runner


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """--set name=value pairs (values as strings, as on a command line)."""
    overrides = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise sweep_lib.SweepError(f"--set takes name=value, got {item!r}")
        overrides[name.lstrip("-")] = value
    return overrides


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status: 0 done, 1 some runs failed, 2 the sweep or its input is invalid."""
    parser = argparse.ArgumentParser(prog="python -m uncertainty_baselines.sweep", description=sweep_lib.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("run", "commands", "collect", "status"))
    parser.add_argument("definition", help="a sweep definition file (defines SWEEP)")
    parser.add_argument("--out", required=True, help="the sweep folder (runs/, logs/, results, sweep.html)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a flag for every run, added to the definition's fixed flags (e.g. data_dir)")
    parser.add_argument("--lock", default=None, help="run each run under `flock LOCK` (a heavy-job lock)")
    parser.add_argument("--hold_lock", action="store_true",
                        help="take --lock once for the whole sweep instead of for each run")
    parser.add_argument("--index", type=int, action="append", default=None,
                        help="run only the run(s) of this index (e.g. a cluster array task's)")
    parser.add_argument("--all", action="store_true", help="commands: also the finished runs")
    args = parser.parse_args(argv)
    try:
        definition = sweep_lib.load(args.definition)
        overrides = parse_overrides(args.set)
        out = pathlib.Path(args.out)
        if args.action == "commands":
            sweep_lib.check_flags(definition, definition.runs(overrides))
            print("\n".join(runner.commands(definition, out, overrides=overrides, lock=args.lock,
                                            pending_only=not args.all)))
            return 0
        if args.action == "status":
            for run in runner.plan(definition, out, overrides):
                print(f"{run.index:4d} {run.id} {runner.status(run, out.resolve()):9s} "
                      f"{' '.join(f'{n}={run.flags[n]}' for n in definition.space.names)}")
            return 0
        failed = []
        if args.action == "run":
            print(f"sweep {args.definition}: {definition.space.description}, {len(definition.space)} runs of "
                  f"{definition.script} -> {out}")
            result = runner.run_sweep(definition, args.definition, out, overrides=overrides, lock=args.lock,
                                      hold_lock=args.hold_lock, only=args.index)
            failed = result["failed"]
            print(f"ran {len(result['finished'])}, skipped {len(result['skipped'])} finished, "
                  f"{len(failed)} failed")
        else:  # collect: the table of the definition as it is now (its metrics may have changed)
            out.mkdir(parents=True, exist_ok=True)
            runner.write_plan(definition, args.definition, out.resolve(), runner.plan(definition, out, overrides))
        written = collect.write_results(out, page=False)
        rows, plan = collect.collect_rows(out)
        for message in collect.missing_metrics(rows, plan):
            print(f"sweep: warning: {message}", file=sys.stderr)
        try:
            written.update(collect.write_results(out))
        except sweep_lib.SweepError as e:
            print(f"sweep: no page: {e}", file=sys.stderr)
        print(f"{collect.summary(rows)}; wrote " + ", ".join(str(p) for p in written.values()))
        return 1 if failed else 0
    except sweep_lib.SweepError as e:
        print(f"sweep: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
