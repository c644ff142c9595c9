"""Helpers of the CIFAR-method end-to-end tests: tiny prepared image data and script runs."""
import gzip
import json
import subprocess
import sys

import numpy as np

import script_runs
from script_runs import REPO, TIMING, without_timing  # noqa: F401 (re-exported)

NUM_TRAIN, NUM_TEST, NUM_OOD = 256, 200, 150
CORRUPTIONS, SEVERITIES = ("gaussian_noise", "contrast"), (1, 3)


def write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array, np.uint8).tobytes())


def read_idx(path):
    data = gzip.open(path).read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def prepare(name, source, data_dir):
    subprocess.run([sys.executable, "-m", "uncertainty_baselines.datasets.prepare", name,
                    f"--source={source}", f"--data_dir={data_dir}", "--nocheck_counts"],
                   check=True, capture_output=True, timeout=300)


def launch(script, args, data_dir, output_dir):
    """Starts baselines/cifar/<script>.py as a user would; stdout and stderr merged."""
    return script_runs.launch("cifar", script, args, data_dir, output_dir)


def run(script, args, data_dir, output_dir, expect_ok=True):
    return script_runs.run("cifar", script, args, data_dir, output_dir, expect_ok)


def sigkill_then_rerun(script, args, data_dir, output_dir):
    """SIGKILLs a run of `script` once its first checkpoint exists and reruns it to its end
    (script_runs.kill_after_first_checkpoint_then_rerun); returns the finished run's metrics
    (to compare with the uninterrupted run's)."""
    out = script_runs.kill_after_first_checkpoint_then_rerun("cifar", script, args, data_dir, output_dir)
    assert "resumed from" in out, out[-3000:]
    return json.loads((output_dir / "run.json").read_text())["metrics"]


def resume_from_first_checkpoint(script, args, data_dir, finished_dir, output_dir):
    """Reruns a copy of finished run `finished_dir` from its first checkpoint (see
    script_runs.rerun_a_copy_from_its_first_checkpoint); returns the resumed run's metrics (to
    compare with the uninterrupted run's)."""
    script_runs.rerun_a_copy_from_its_first_checkpoint("cifar", script, args, data_dir, finished_dir, output_dir)
    return json.loads((output_dir / "run.json").read_text())["metrics"]
