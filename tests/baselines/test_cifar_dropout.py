"""baselines/cifar/dropout.py end to end on the tiny prepared Fashion-MNIST subset: sampled
evaluation with the ensemble metrics and OOD kinds, exact resume after SIGKILL, reload,
flags refused at validation."""
import json
import types

import numpy as np
import pytest
import tensorflow as tf

import cifar_e2e
import uncertainty_baselines as ub
from cifar_e2e import NUM_TEST, without_timing
from uncertainty_baselines.training import method_flags

COMMON = ["--dataset=fashion_mnist", "--depth=10", "--width=1", "--batch_size=32", "--train_epochs=2",
          "--eval_on_ood", "--ood_dataset=mnist", "--num_dropout_samples=3", "--dropout_rate=0.2",
          "--steps_per_loop=2", "--log_interval_s=0", "--seed=3"]


def run(args, data_dir, output_dir, expect_ok=True):
    return cifar_e2e.run("dropout", [*COMMON, *args], data_dir, output_dir, expect_ok)


@pytest.fixture(scope="module")
def dropout_run(cifar_data_dir, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("runs") / "dropout"
    run([], cifar_data_dir, out_dir)
    return out_dir


def test_sampled_evaluation_reports_ensemble_metrics_and_ood_kinds(dropout_run):
    record = json.loads((dropout_run / "run.json").read_text())
    metrics = record["metrics"]
    assert record["method"] == "mc_dropout" and record["model"]["name"] == "wide_resnet_mc_dropout"
    assert metrics["test/num_examples"] == NUM_TEST
    assert metrics["test/disagreement"] > 0 and metrics["test/mutual_information"] > 0  # Passes differ.
    for key in ("test/accuracy_member_2", "ood/mnist_auroc", "ood/mnist_entropy_auroc",
                "ood/mnist_mutual_information_auroc", "test/ensemble_negative_log_likelihood"):
        assert key in metrics, key
    assert metrics["test/negative_log_likelihood"] == pytest.approx(metrics["test/ensemble_negative_log_likelihood"])
    model = ub.models.load(dropout_run)
    x = tf.random.stateless_normal((4, 28, 28, 1), seed=(1, 2))
    assert not np.array_equal(np.asarray(model(x, training=False)), np.asarray(model(x, training=False)))


def test_sigkill_after_the_first_checkpoint_then_rerun_is_exact(dropout_run, cifar_data_dir, tmp_path):
    got = cifar_e2e.sigkill_then_rerun("dropout", COMMON, cifar_data_dir, tmp_path / "killed")
    ref = json.loads((dropout_run / "run.json").read_text())["metrics"]
    assert without_timing(got) == without_timing(ref)  # Dropout masks included: exactly equal.


def test_bad_method_flags_refused_all_at_once(cifar_data_dir, tmp_path):
    code, out = run(["--dropout_rate=1.0", "--num_dropout_samples=0"], cifar_data_dir, tmp_path / "bad", expect_ok=False)
    assert code != 0 and not (tmp_path / "bad").exists()
    for message in ("--dropout_rate must be in [0, 1)", "--num_dropout_samples must be >= 1"):
        assert message in out, message


@pytest.mark.parametrize("rate,ok", [(-0.1, False), (0.0, True), (0.99, True), (1.0, False)])
def test_dropout_rate_domain(rate, ok):
    errors = method_flags.dropout_errors(types.SimpleNamespace(dropout_rate=rate, num_dropout_samples=1))
    assert (errors == []) == ok and (ok or f"--dropout_rate must be in [0, 1), got {rate}" in errors[0])
