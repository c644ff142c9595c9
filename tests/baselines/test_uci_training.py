"""The UCI baselines' protocol helpers: split metrics, summaries, selection settings, flag
parsing, and the README table."""
import importlib.util
import json
import pathlib

import numpy as np
import pytest
from scipy import stats

from uncertainty_baselines.training import uci_flags, uci_protocol


def _load_make_table():
    """baselines/uci/make_table.py, a script, imported from its file."""
    path = pathlib.Path(__file__).resolve().parents[2] / "baselines" / "uci" / "make_table.py"
    spec = importlib.util.spec_from_file_location("make_table", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_table = _load_make_table()


def test_split_metrics_for_one_gaussian_match_scipy():
    rng = np.random.default_rng(0)
    mean, std = rng.normal(size=20), rng.uniform(0.5, 2, size=20)
    label = mean + std * rng.normal(size=20)
    result = uci_protocol.split_metrics(mean[None], std[None], label)
    np.testing.assert_allclose(result["log_likelihood"],
                               stats.norm.logpdf(label, mean, std).mean())
    np.testing.assert_allclose(result["rmse"], np.sqrt(np.mean((label - mean) ** 2)))
    inside = np.abs(label - mean) <= stats.norm.ppf(0.975) * std
    np.testing.assert_allclose(result["interval_coverage_95"], inside.mean())


def test_summarise_gives_mean_and_standard_error():
    summary = uci_protocol.summarise([{"rmse": 1.0}, {"rmse": 2.0}, {"rmse": 6.0}])
    assert summary["test/rmse"] == 3.0
    np.testing.assert_allclose(summary["test/rmse_se"], np.std([1, 2, 6], ddof=1) / np.sqrt(3))


def test_parse_splits():
    assert uci_flags.parse_splits("all", 3) == [0, 1, 2]
    assert uci_flags.parse_splits("2,0", 3) == [2, 0]
    with pytest.raises(ValueError, match=r"valid 0\.\.2"):
        uci_flags.parse_splits("3", 3)
    with pytest.raises(ValueError, match="comma-separated integers or 'all'"):
        uci_flags.parse_splits("first", 3)


def test_a_repeated_split_is_refused():  # it would count twice in the mean and its s.e.
    with pytest.raises(ValueError, match=r"--split repeats \[0\]"):
        uci_flags.parse_splits("0,2,0", 3)


FLAGS = {"learning_rate": ["0.01", "1e-3"], "epochs": 0, "epoch_candidates": ["40", "100"],
         "max_selection_steps": 1000, "selection_validation_percent": 0.2}


def test_selection_from_flags():
    selection = uci_flags.selection(FLAGS)
    assert selection == uci_protocol.Selection(learning_rates=(0.01, 0.001),
                                               epoch_candidates=(40, 100), max_steps=1000)
    assert selection.needed
    # 11 steps per epoch: 100 epochs exceed 1000 steps; the first candidate always stays
    assert selection.epochs_to_score(num_train=352, batch_size=32) == [40]
    assert selection.epochs_to_score(num_train=32, batch_size=32) == [40, 100]
    fixed = uci_flags.selection({**FLAGS, "learning_rate": 0.001, "epochs": 7})  # dropout's float
    assert not fixed.needed and fixed.epochs_to_score(320, 32) == [7]


@pytest.mark.parametrize("flag,value,message", [
    ("epoch_candidates", ["40", "many"], "--epoch_candidates must be comma-separated integers"),
    ("epoch_candidates", ["100", "40"], "positive and increasing"),
    ("learning_rate", ["fast"], "--learning_rate must be comma-separated numbers"),
    ("learning_rate", ["0.01", "0"], "positive and finite"),
    ("selection_validation_percent", 1.0, r"carve-out in \(0, 1\)"),
])
def test_bad_selection_flags_are_refused(flag, value, message):
    with pytest.raises(ValueError, match=message):
        uci_flags.selection({**FLAGS, flag: value})


def test_table_verdict_is_within_one_standard_error_or_better():
    assert make_table.matches(-2.50, 0.05, -2.46, higher_is_better=True)  # within 1 s.e.
    assert not make_table.matches(-2.60, 0.05, -2.46, higher_is_better=True)
    assert make_table.matches(2.50, 0.01, 2.97, higher_is_better=False)  # better RMSE
    assert not make_table.matches(3.10, 0.10, 2.97, higher_is_better=False)
    # published 0.00 stands for [0, 0.005): 0.0062 +- 0.0015 is within one s.e. of it
    assert make_table.matches(0.0062, 0.0015, 0.00, higher_is_better=False)
    assert not make_table.matches(0.0070, 0.0015, 0.00, higher_is_better=False)


def test_table_rows_and_counts_from_run_records(tmp_path):
    def record(ll, ll_se, rmse, rmse_se):
        metrics = {"test/log_likelihood": ll, "test/log_likelihood_se": ll_se, "test/rmse": rmse,
                   "test/rmse_se": rmse_se, "test/crps": 1.0, "test/crps_se": 0.1,
                   "test/interval_coverage_95": 0.95}
        return {"metrics": metrics, "splits": list(range(20)), "wall_time_s": 3.0}
    for method, dataset, values in (("dropout", "uci_yacht", (-1.50, 0.1, 1.30, 0.1)),
                                    ("ensemble", "uci_yacht", (-1.10, 0.1, 1.50, 0.1))):
        (tmp_path / method / dataset).mkdir(parents=True)
        (tmp_path / method / dataset / "run.json").write_text(json.dumps(record(*values)))
    text = make_table.table(tmp_path)
    # dropout yacht published -1.55 / 1.11: LL better, RMSE 0.19 worse with s.e. 0.1
    assert "| uci_yacht | dropout | -1.50 ± 0.10 | 1.30 ± 0.10 | -1.55 / 1.11 | ok / worse |" in text
    assert "ensemble: LL and RMSE both ok on 1 of 1 datasets run." in text
    assert "dropout: LL and RMSE both ok on 0 of 1 datasets run." in text
    assert "Not run: deterministic/uci_boston_housing" in text
