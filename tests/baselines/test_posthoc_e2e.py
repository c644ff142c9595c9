"""--save_predictions and experimental/posthoc end to end on the tiny Fashion-MNIST run:
deterministic.py with a validation carve-out writes every evaluated set's predictions
(checked against the data and the run's own metrics), then the post-hoc command fits on
the carve-out and reports every method under the run's metric names."""
import json
import subprocess
import sys

import numpy as np
import pytest
from scipy import special

import cifar_e2e
from cifar_e2e import CORRUPTIONS, NUM_OOD, NUM_TEST, SEVERITIES, read_idx
from uncertainty_baselines import metrics as ub_metrics
from uncertainty_baselines.runs import predictions

TRAIN_EXAMPLES = 192  # Of the 256 prepared: examples 192..255 are the run's validation carve-out.
ARGS = ["--dataset=fashion_mnist", "--depth=10", "--width=1", "--batch_size=32", "--train_epochs=1",
        f"--train_examples={TRAIN_EXAMPLES}", "--base_learning_rate=0.4", "--eval_on_ood", "--ood_dataset=mnist",
        "--corruptions_interval=1", f"--corruption_types={','.join(CORRUPTIONS)}",
        f"--severities={','.join(map(str, SEVERITIES))}", "--steps_per_loop=2", "--log_interval_s=0", "--seed=3",
        "--save_predictions"]
POSTHOC = cifar_e2e.REPO / "experimental" / "posthoc" / "posthoc.py"


@pytest.fixture(scope="module")
def run_dir(cifar_data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("posthoc") / "run"
    cifar_e2e.run("deterministic", ARGS, cifar_data_dir, out)
    return out


def posthoc(args, expect_ok=True):
    done = subprocess.run([sys.executable, str(POSTHOC), *args], capture_output=True, text=True, timeout=300,
                          cwd=cifar_e2e.REPO)
    if expect_ok:
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return done.returncode, done.stdout + done.stderr


def test_save_predictions_writes_every_evaluated_set(run_dir, cifar_data_dir, fashion_mnist_dir):
    metrics = json.loads((run_dir / "run.json").read_text())["metrics"]
    got = predictions.read_predictions(run_dir / "predictions")  # Every sha256 verified.
    assert sorted(got) == sorted(["test", "ood_mnist"] + [f"corrupted_{t}_{s}" for t in CORRUPTIONS for s in SEVERITIES])
    test = got["test"].arrays
    np.testing.assert_array_equal(test["id"], np.arange(NUM_TEST))
    originals = read_idx(fashion_mnist_dir / "t10k-labels-idx1-ubyte.gz")[:NUM_TEST]
    np.testing.assert_array_equal(np.bincount(test["labels"], minlength=10), np.bincount(originals, minlength=10))
    from uncertainty_baselines import datasets as ub_datasets
    in_order = np.concatenate([b["labels"].numpy()[b["mask"].numpy() > 0] for b in ub_datasets.get(
        "fashion_mnist", "test", data_dir=str(cifar_data_dir)).load(batch_size=64)])
    np.testing.assert_array_equal(test["labels"], in_order)  # Example id i has the split's i-th label.
    probs = special.softmax(test["logits"].astype(np.float64), axis=1)
    m = ub_metrics.ClassificationMetrics(10)
    m.add_batch(probs, label=test["labels"])
    assert m.result()["accuracy"] == pytest.approx(metrics["test/accuracy"], abs=1.5 / NUM_TEST)  # A float32 tie at most.
    assert m.result()["negative_log_likelihood"] == pytest.approx(metrics["test/negative_log_likelihood"], rel=1e-5)
    ood = got["ood_mnist"].arrays
    assert len(ood["id"]) == NUM_TEST + NUM_OOD and np.all(ood["labels"][ood["is_in_distribution"] == 0] == -1)
    np.testing.assert_allclose(ood["logits"][:NUM_TEST], test["logits"], rtol=1e-5, atol=1e-5)  # The test set first.
    auroc = ub_metrics.auroc(1 - special.softmax(ood["logits"], axis=1).max(1), ood["is_in_distribution"] == 0)
    assert auroc == pytest.approx(metrics["ood/mnist_auroc"], abs=1e-9)
    contrast = got["corrupted_contrast_3"].arrays
    assert np.mean(contrast["logits"].argmax(1) == contrast["labels"]) == pytest.approx(
        metrics["test/accuracy_contrast_3"], abs=1.5 / NUM_TEST)


def test_eval_only_saves_the_same_predictions(run_dir, cifar_data_dir, tmp_path):
    args = [a for a in ARGS if not a.startswith(("--eval_on_ood", "--corruption"))]  # The test set only.
    cifar_e2e.run("deterministic", [*args, "--eval_only", f"--checkpoint_dir={run_dir}"], cifar_data_dir,
                  tmp_path / "eval")
    got = predictions.read_predictions(tmp_path / "eval" / "predictions")
    assert sorted(got) == ["test"] and predictions.read_manifest(tmp_path / "eval" / "predictions")["step"] == 6
    want = predictions.read_set(run_dir / "predictions", "test").arrays
    np.testing.assert_array_equal(got["test"].arrays["id"], want["id"])
    np.testing.assert_allclose(got["test"].arrays["logits"], want["logits"], rtol=1e-5, atol=1e-5)


def test_posthoc_command_fits_on_the_carve_out_and_reports_every_method(run_dir, cifar_data_dir, tmp_path):
    out = tmp_path / "posthoc"
    _, log = posthoc([f"--run={run_dir}", f"--output_dir={out}", f"--data_dir={cifar_data_dir}"])
    result = json.loads((out / "posthoc.json").read_text())
    run_metrics = json.loads((run_dir / "run.json").read_text())["metrics"]
    held = {k: v for k, v in result["heldout"].items() if not k.startswith("raw_")}
    assert held == {"spec": "validation", "split": "train", "start": TRAIN_EXAMPLES, "stop": 256,
                    "num_examples": 256 - TRAIN_EXAMPLES, "test_duplicates_dropped": 0, "seen_in_training": False}
    assert 0 <= result["heldout"]["raw_accuracy"] <= 1
    assert result["fit"]["start"] == 0 and result["fit"]["stop"] == TRAIN_EXAMPLES
    m = result["metrics"]
    assert m["raw/test/accuracy"] == pytest.approx(run_metrics["test/accuracy"], abs=1.5 / NUM_TEST)  # Same model and set.
    assert m["raw/ood/mnist_auroc"] == pytest.approx(run_metrics["ood/mnist_auroc"], abs=1e-3)
    for key in ("temperature/test/negative_log_likelihood", "temperature/test/ece_mean_corrupted",
                "conformal_aps/test/coverage", "conformal_aps/test/set_size", "conformal_aps/ood/mnist_set_size",
                "conformal_raps/test/coverage_mean_corrupted", "conformal_raps/test/set_size_contrast_3",
                "laplace_diag/test/ece", "laplace_kfac/test/negative_log_likelihood", "laplace_kfac/ood/mnist_auroc",
                "ddu/ood/mnist_auroc", "ddu/ood/mnist_fpr_at_95_tpr"):
        assert key in m and np.isfinite(m[key]), key
    assert m["temperature/test/accuracy"] == m["raw/test/accuracy"]  # A temperature keeps the argmax.
    assert 1 <= m["conformal_aps/test/set_size"] <= 10
    assert result["parameters"]["temperature"]["temperature"] > 0
    assert result["parameters"]["laplace_kfac"]["prior_precision"] > 0
    assert "| laplace_kfac |" in log
    assert (out / "features" / "manifest.json").is_file()


@pytest.mark.parametrize("args,message", [
    (["--heldout=test[0:100]"], "must never be the test set"),
    (["--coverage=1.0"], "--coverage must lie in (0, 1)"),
])
def test_posthoc_bad_input_refused(args, message, run_dir, cifar_data_dir, tmp_path):
    """As a user sees it (the other refusals: tests/experimental/test_posthoc_refusals.py)."""
    code, log = posthoc([f"--run={run_dir}", f"--output_dir={tmp_path / 'out'}", f"--data_dir={cifar_data_dir}",
                         *args], expect_ok=False)
    assert code != 0 and message in log
    assert not (tmp_path / "out").exists()
