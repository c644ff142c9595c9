"""Hyperparameter sweeps over a baseline script's flags: define, run, collect, plot.

    python -m uncertainty_baselines.sweep run baselines/uci/sweeps/lr_epochs.py --out runs/sweeps/uci \
        --set data_dir=../shared/data --lock /tmp/ub_heavy.lock
    python -m uncertainty_baselines.sweep commands DEFINITION --out DIR   # one line per run (array job)
    python -m uncertainty_baselines.sweep collect DEFINITION --out DIR    # table + page only
    python -m uncertainty_baselines.sweep status DEFINITION --out DIR

A definition file defines `SWEEP = Sweep(script=..., space=grid(...)|random_search(...)|
halton(...), fixed={...}, metrics=(...))` (definition.py, space.py). `run` checks every
flag against the script first, then runs the unfinished runs one after another (runner.py;
finished runs are skipped, so it resumes) and writes results.csv, results.jsonl and the
HiPlot parallel-coordinates page sweep.html into the sweep folder (collect.py).
"""
from uncertainty_baselines.sweep.collect import collect_rows, parallel_coordinates_page, write_results
from uncertainty_baselines.sweep.definition import Sweep, check_flags, load
from uncertainty_baselines.sweep.runner import commands, plan, run_sweep, status
from uncertainty_baselines.sweep.space import (
    Choice, IntUniform, LogUniform, Space, SweepError, Uniform, chain, grid, halton, product, random_search)

__all__ = ["Choice", "IntUniform", "LogUniform", "Space", "Sweep", "SweepError", "Uniform", "chain", "check_flags",
           "collect_rows", "commands", "grid", "halton", "load", "parallel_coordinates_page", "plan", "product",
           "random_search", "run_sweep", "status", "write_results"]
