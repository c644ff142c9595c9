"""Helpers of the CIFAR-method end-to-end tests: tiny prepared image data and script runs."""
import gzip
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[2]
NUM_TRAIN, NUM_TEST, NUM_OOD = 256, 200, 150
CORRUPTIONS, SEVERITIES = ("gaussian_noise", "contrast"), (1, 3)
TIMING = ("train/ms_per_example", "test/ms_per_example")


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
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen([sys.executable, str(REPO / "baselines" / "cifar" / f"{script}.py"),
                             f"--data_dir={data_dir}", f"--output_dir={output_dir}", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO)


def run(script, args, data_dir, output_dir, expect_ok=True):
    proc = launch(script, args, data_dir, output_dir)
    out, _ = proc.communicate(timeout=300)
    if expect_ok:
        assert proc.returncode == 0, out[-3000:]
    return proc.returncode, out


def without_timing(metrics):
    return {k: v for k, v in metrics.items() if k not in TIMING}


def kill_after_first_checkpoint_then_resume(script, args, data_dir, output_dir):
    """Runs a script, SIGKILLs it once its first checkpoint exists, reruns it to the end;
    returns the resumed run's metrics (to compare with an uninterrupted run's)."""
    proc = launch(script, args, data_dir, output_dir)
    deadline = time.time() + 300  # Generous: a loaded 2-core machine may take minutes.
    while not list((output_dir / "checkpoints").glob("ckpt-*")) and proc.poll() is None:
        assert time.time() < deadline, "no checkpoint"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    _, out = run(script, args, data_dir, output_dir)
    assert "resumed from" in out
    return json.loads((output_dir / "run.json").read_text())["metrics"]
