"""Runs baseline scripts as a user would (a subprocess per run) and kills one mid-run:
the process plumbing of the end-to-end tests of every baseline folder."""
import os
import pathlib
import signal
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
TIMING = ("train/ms_per_example", "test/ms_per_example")


def launch(folder, script, args, data_dir, output_dir):
    """Starts baselines/<folder>/<script>.py; stdout and stderr merged."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen([sys.executable, str(REPO / "baselines" / folder / f"{script}.py"),
                             f"--data_dir={data_dir}", f"--output_dir={output_dir}", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO)


def run(folder, script, args, data_dir, output_dir, expect_ok=True):
    """Runs a script to its end; returns (exit code, console output)."""
    proc = launch(folder, script, args, data_dir, output_dir)
    out, _ = proc.communicate(timeout=300)
    if expect_ok:
        assert proc.returncode == 0, out[-3000:]
    return proc.returncode, out


def without_timing(metrics):
    """Metrics without the wall-clock figures (they differ between identical runs)."""
    return {k: v for k, v in metrics.items() if k not in TIMING}


def kill_after_first_checkpoint_then_rerun(folder, script, args, data_dir, output_dir):
    """SIGKILLs a script once its first checkpoint exists, reruns it to the end; returns
    the rerun's console output."""
    proc = launch(folder, script, args, data_dir, output_dir)
    deadline = time.time() + 300  # Generous: a loaded 2-core machine may take minutes.
    while not list((output_dir / "checkpoints").glob("ckpt-*")) and proc.poll() is None:
        assert time.time() < deadline, "no checkpoint"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    return run(folder, script, args, data_dir, output_dir)[1]
