"""baselines/cifar/sngp.py end to end: mean-field evaluation with the Dempster-Shafer OOD
score, the reloaded model reproducing the run's test metrics, exact resume from a checkpoint
(the GP precision reset and re-accumulated per epoch), flags refused at validation."""
import json

import numpy as np
import pytest

import cifar_e2e
import uncertainty_baselines as ub
from cifar_e2e import NUM_TEST, without_timing

COMMON = ["--dataset=fashion_mnist", "--depth=10", "--width=1", "--batch_size=32", "--train_epochs=2",
          "--eval_on_ood", "--ood_dataset=mnist", "--num_inducing=64", "--gp_input_dim=32",
          "--steps_per_loop=2", "--log_interval_s=0", "--seed=5"]


def run(args, data_dir, output_dir, expect_ok=True):
    return cifar_e2e.run("sngp", [*COMMON, *args], data_dir, output_dir, expect_ok)


@pytest.fixture(scope="module")
def sngp_run(cifar_data_dir, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("runs") / "sngp"
    run([], cifar_data_dir, out_dir)
    return out_dir


def test_reports_dempster_shafer_and_the_reloaded_model_reproduces_the_test_metrics(sngp_run, cifar_data_dir):
    record = json.loads((sngp_run / "run.json").read_text())
    metrics = record["metrics"]
    assert record["method"] == "sngp" and record["model"]["name"] == "wide_resnet_sngp"
    assert record["model"]["kwargs"]["gp_length_scale"] == 20.0 and record["flags"]["base_learning_rate"] == 0.08
    assert metrics["test/num_examples"] == NUM_TEST
    for key in ("ood/mnist_auroc", "ood/mnist_dempster_shafer_auroc", "ood/mnist_dempster_shafer_aupr_out"):
        assert key in metrics, key
    model = ub.models.load(sngp_run)
    test = ub.datasets.get("fashion_mnist", "test", data_dir=str(cifar_data_dir)).load(batch_size=NUM_TEST)
    batch = next(iter(test))
    logits = np.asarray(model(batch["features"], training=False), np.float64)  # Mean-field logits.
    log_probs = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
    labels = batch["labels"].numpy()
    assert np.mean(logits.argmax(-1) == labels) == metrics["test/accuracy"]
    nll = -np.mean(log_probs[np.arange(NUM_TEST), labels])
    assert nll == pytest.approx(metrics["test/negative_log_likelihood"], rel=1e-4)


def test_resume_from_the_first_checkpoint_is_exact(sngp_run, cifar_data_dir, tmp_path):
    got = cifar_e2e.resume_from_first_checkpoint("sngp", COMMON, cifar_data_dir, sngp_run, tmp_path / "resumed")
    ref = json.loads((sngp_run / "run.json").read_text())["metrics"]
    assert without_timing(got) == without_timing(ref)  # Precision, power iterations, dropout included.


def test_bad_method_flags_refused_all_at_once(cifar_data_dir, tmp_path):
    bad = ["--spec_norm_bound=0", "--num_inducing=0", "--gp_ridge_penalty=-1", "--gp_length_scale=0",
           "--gp_covariance_momentum=1", "--dropout_rate=1", "--spec_norm_iterations=0", "--gp_input_dim=-1"]
    code, out = run(bad, cifar_data_dir, tmp_path / "bad", expect_ok=False)
    assert code != 0 and not (tmp_path / "bad").exists()
    for message in ("--spec_norm_bound must be > 0, got 0.0", "--num_inducing must be >= 1, got 0",
                    "--gp_ridge_penalty must be > 0, got -1.0", "--gp_length_scale must be > 0",
                    "--gp_covariance_momentum must be <= 0 (exact) or in (0, 1) (discounted), got 1.0",
                    "--dropout_rate must be in [0, 1), got 1.0", "--spec_norm_iterations must be >= 1",
                    "--gp_input_dim must be >= 0 (0: no projection), got -1"):
        assert message in out, message
