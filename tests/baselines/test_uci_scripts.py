"""End to end: each UCI baseline script on two real Boston splits with a few epochs."""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import uncertainty_baselines as ub

REPO = pathlib.Path(__file__).resolve().parents[2]
SCRIPTS = {
    "deterministic": [],  # epochs chosen on the validation carve-out
    "ensemble": ["--epochs=2", "--num_members=3", "--adversarial"],
    "dropout": ["--epochs=2", "--num_samples=50", "--num_samples_validation=10"],
    "variational_inference": ["--epochs=2", "--num_samples=10"],
}
KEYS = [f"test/{m}{s}" for m in ("log_likelihood", "rmse", "crps", "interval_coverage_95",
                                 "interval_width_95") for s in ("", "_se")]


MODELS = {"deterministic": "mlp_gaussian", "ensemble": "mlp_gaussian", "dropout": "mlp",
          "variational_inference": "mlp_variational_gaussian"}


def run(script: str, output_dir: pathlib.Path, data_dir: pathlib.Path, *extra: str):
    """The script of this checkout (PYTHONPATH: whatever package is installed) on two splits."""
    return subprocess.run(
        [sys.executable, str(REPO / "baselines" / "uci" / f"{script}.py"),
         "--dataset=uci_boston_housing", "--split=0,3", f"--data_dir={data_dir}",
         f"--output_dir={output_dir}", *extra],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "KERAS_BACKEND": "tensorflow", "UB_NUM_LOGICAL_CPUS": "1",
             "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])})


@pytest.mark.integration
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_script_writes_run_record_and_per_split_metrics(script, shared_data, tmp_path):
    result = run(script, tmp_path / "run", shared_data, *SCRIPTS[script])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "epoch 1/" in result.stderr and "ETA" in result.stderr  # progress while training
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert sorted(record["metrics"]) == sorted(KEYS)
    assert record["splits"] == [0, 3] and record["method"] == script
    assert record["flags"]["dataset"] == "uci_boston_housing"
    assert "alsologtostderr" not in record["flags"]  # only the script's own flags
    m = record["metrics"]
    assert -20 < m["test/log_likelihood"] < 0 and 0 < m["test/rmse"] < 30  # Boston, $1000s
    assert 0 <= m["test/interval_coverage_95"] <= 1
    lines = [json.loads(line) for line in
             (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [line["split"] for line in lines] == [0, 3]
    assert record["model"]["name"] == MODELS[script]
    model = ub.models.load(tmp_path / "run")  # the trained stack, from its checkpoint
    members = record["model"]["kwargs"]["num_members"]  # splits x ensemble members
    assert members == (6 if script == "ensemble" else 2)
    outputs = np.asarray(model(np.zeros((members, 5, 13), np.float32)))
    assert outputs.shape == (members, 5, 1 if script == "dropout" else 2)
    if script == "deterministic":
        selection = record["validation_log_likelihood_by_learning_rate_and_epochs"]
        assert list(selection) == ["0.001"] and record["learning_rate"] == 0.001
        by_epochs = selection["0.001"]
        assert sorted(map(int, by_epochs)) == [40, 100, 200, 400]
        assert by_epochs[str(record["epochs"])] == max(by_epochs.values())
        # the same folder with other flags is refused rather than mixed
        again = run(script, tmp_path / "run", shared_data, "--epochs=3")
        assert again.returncode != 0 and "epochs: 0 -> 3" in again.stderr
    if script == "ensemble":  # --epochs=2 fixed; the default learning rates are candidates
        selection = record["validation_log_likelihood_by_learning_rate_and_epochs"]
        assert sorted(selection) == ["0.001", "0.01"] and record["epochs"] == 2
        best = max(selection, key=lambda lr: selection[lr]["2"])
        assert record["learning_rate"] == float(best)
    if script == "dropout":  # dropout's noise needs longer: its default candidates go to 1000
        assert record["flags"]["epoch_candidates"] == ["40", "100", "200", "400", "1000"]
        assert set(record["chosen_dropout_rate"]) <= {0.005, 0.01, 0.05, 0.1}
        assert set(record["chosen_tau"]) <= {0.1, 0.15, 0.2}
        scores = record["grid_validation_log_likelihood"]  # epochs -> [splits, 12 grid points]
        assert list(scores) == ["2"] and np.shape(scores["2"]) == (2, 12)
