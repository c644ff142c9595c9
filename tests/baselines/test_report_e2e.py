"""The report of a real run: baselines/cifar/deterministic.py on the tiny prepared data
writes curves.jsonl beside metrics.jsonl, consistent with the metrics it reports, and the
report of it draws every picture (nothing "unavailable")."""
import json

import numpy as np
import pytest

import cifar_e2e
from cifar_e2e import CORRUPTIONS, NUM_OOD, NUM_TEST, SEVERITIES
from uncertainty_baselines import report
from uncertainty_baselines.report import figures
from uncertainty_baselines.runs import curves, summaries

ARGS = ["--dataset=fashion_mnist", "--depth=10", "--width=1", "--batch_size=32", "--train_epochs=2",
        "--eval_on_ood", "--ood_dataset=mnist", "--corruptions_interval=2",
        f"--corruption_types={','.join(CORRUPTIONS)}", f"--severities={','.join(map(str, SEVERITIES))}",
        "--steps_per_loop=4", "--log_interval_s=0", "--seed=3"]


@pytest.fixture(scope="module")
def real_run(cifar_data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("report_runs") / "det-tiny"
    cifar_e2e.run("deterministic", ARGS, cifar_data_dir, out)
    return out


def test_curves_recorded_by_the_script_match_its_metrics(real_run):
    lines, records = summaries.read_metrics(real_run), curves.read_curves(real_run)
    assert [(r["step"], r["epoch"]) for r in records] == [(r["step"], r["epoch"]) for r in lines]
    first, last = records
    assert set(first["reliability"]) == {"test"}  # corrupted sets only every 2 epochs
    assert set(last["reliability"]) == {"test"} | {f"test/{t}_{s}" for t in CORRUPTIONS for s in SEVERITIES}
    metrics = json.loads((real_run / "run.json").read_text())["metrics"]
    test = last["reliability"]["test"]
    assert sum(test["count"]) == NUM_TEST
    assert figures.expected_calibration_error(test) == pytest.approx(metrics["test/ece"], abs=1e-5)
    cell = last["reliability"]["test/contrast_3"]
    assert figures.expected_calibration_error(cell) == pytest.approx(metrics["test/ece_contrast_3"], abs=1e-5)
    roc = last["roc"]["mnist"]
    assert (roc["num_in"], roc["num_ood"], roc["kind"]) == (NUM_TEST, NUM_OOD, "msp")
    assert np.trapezoid(roc["tpr"], roc["fpr"]) == pytest.approx(metrics["ood/mnist_auroc"], abs=5e-3)


def test_report_of_the_real_run_draws_everything(real_run, tmp_path):
    run = report.load_run(real_run)
    assert run.command.startswith("python baselines/cifar/deterministic.py ")
    assert set(report.availability(run).values()) == {"yes", "yes (2 evaluations)"}
    page = report.write_report([real_run], tmp_path / "real.html").read_text()
    # Clean and pooled-corrupted reliability, severity, per type, 3 per type x severity, ROC, training.
    assert page.count("<img ") == 9 and "unavailable" not in page
