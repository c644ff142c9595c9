"""Faults of the UCI baselines, each run as a user would (a script in a subprocess, a few
epochs on one or two real Boston splits): single-member runs, a repeated split, a rerun
into the same folder, and a second process on a folder that is in use."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # Runs the UCI scripts many times: starts early (tests/conftest.py).

REPO = pathlib.Path(__file__).resolve().parents[2]
ENV = {**os.environ, "KERAS_BACKEND": "tensorflow", "UB_NUM_LOGICAL_CPUS": "1",
       "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def run_script(script: str, output_dir: pathlib.Path, *flags: str, env: dict = ENV):
    """baselines/uci/<script>.py of this checkout on Boston with `flags`."""
    return subprocess.run(
        [sys.executable, str(REPO / "baselines" / "uci" / f"{script}.py"),
         "--dataset=uci_boston_housing", f"--output_dir={output_dir}", *flags],
        capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.integration
@pytest.mark.parametrize("script,flags", [
    ("deterministic", []),
    ("variational_inference", ["--num_samples=2"]),
    ("ensemble", ["--num_members=1"]),
    ("dropout", ["--num_samples=5", "--num_samples_validation=2"]),
])
def test_a_single_member_run_works(script, flags, shared_data, tmp_path):
    # One split and one member: a stack of one network (it was built unstacked and crashed).
    # The data folder comes from UB_DATA_DIR, as everywhere in the library.
    result = run_script(script, tmp_path / "run", "--split=0", "--epochs=1", *flags,
                        env={**ENV, "UB_DATA_DIR": str(shared_data)})
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["splits"] == [0] and record["model"]["kwargs"]["num_members"] == 1
    assert record["metrics"]["test/rmse"] > 0 and record["metrics"]["test/rmse_se"] is None


@pytest.mark.integration
def test_a_repeated_split_is_refused_before_anything_is_written(shared_data, tmp_path):
    result = run_script("deterministic", tmp_path / "run", "--split=0,0", "--epochs=1",
                        f"--data_dir={shared_data}")
    assert result.returncode != 0 and "--split repeats [0]" in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.integration
def test_a_rerun_into_the_same_folder_starts_afresh(shared_data, tmp_path):
    for _ in range(2):
        result = run_script("deterministic", tmp_path / "run", "--split=0,3", "--epochs=1",
                            f"--data_dir={shared_data}")
        assert result.returncode == 0, result.stderr[-3000:]
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["split"] for line in lines] == [0, 3]  # not [0, 3, 0, 3]


@pytest.mark.integration
def test_a_second_process_on_a_folder_in_use_is_refused_naming_the_holder(shared_data, tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from uncertainty_baselines.runs import lock; "
         "lock.FolderLock(sys.argv[1]).acquire(); print('held', flush=True); sys.stdin.read()",
         str(tmp_path / "run")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert holder.stdout.readline().strip() == "held"
        result = run_script("deterministic", tmp_path / "run", "--split=0", "--epochs=1",
                            f"--data_dir={shared_data}")
    finally:
        holder.communicate(input="", timeout=60)
    assert result.returncode != 0
    assert "in use by another process" in result.stderr and f"pid {holder.pid}" in result.stderr
    assert [p.name for p in (tmp_path / "run").iterdir()] == [".lock"]  # nothing written
