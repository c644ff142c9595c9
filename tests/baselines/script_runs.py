"""Runs baseline scripts as a user would (a subprocess per run), kills one mid-run or
resumes a copy of a finished one: the process plumbing of the end-to-end tests of every
baseline folder."""
import os
import pathlib
import shutil
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


def rerun_a_copy_from_its_first_checkpoint(folder, script, args, data_dir, finished_dir, output_dir):
    """Copies finished run `finished_dir` to `output_dir` as a process killed after its last
    evaluation and before that evaluation's checkpoint leaves it (checkpoints after the first
    and run.json removed; metrics.jsonl and curves.jsonl keep the lines the resume must
    drop), then reruns the script there; returns the rerun's console output.

    One process instead of the two of a real kill: the tests of a method's resume state use
    it; real kills are tested on the shared lifecycle and on the scripts whose issue names
    SIGKILL (deterministic, MC dropout, BatchEnsemble and MIMO on CIFAR, CLINC, ViT).
    """
    shutil.copytree(finished_dir, output_dir)
    first, *later = sorted((output_dir / "checkpoints").glob("ckpt-*"))
    assert later, f"{finished_dir} has a single checkpoint: nothing to resume"
    for path in later:
        shutil.rmtree(path)
    (output_dir / "run.json").unlink()
    out = run(folder, script, args, data_dir, output_dir)[1]
    assert f"resumed from {first}" in out, out[-3000:]
    return out
