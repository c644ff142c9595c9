"""baselines/cifar/batchensemble.py end to end: the members of one tiled batch reported
with the ensemble metrics and its OOD scores, exact resume after SIGKILL, reload, flags
refused."""
import json

import numpy as np
import pytest
import tensorflow as tf

import cifar_e2e
import uncertainty_baselines as ub
from cifar_e2e import NUM_TEST, without_timing

COMMON = ["--dataset=fashion_mnist", "--depth=10", "--width=1", "--batch_size=32", "--train_epochs=2",
          "--ensemble_size=2", "--steps_per_loop=2", "--log_interval_s=0", "--seed=4",
          "--eval_on_ood", "--ood_dataset=mnist"]


def run(args, data_dir, output_dir, expect_ok=True):
    return cifar_e2e.run("batchensemble", [*COMMON, *args], data_dir, output_dir, expect_ok)


@pytest.fixture(scope="module")
def batchensemble_run(cifar_data_dir, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("runs") / "batchensemble"
    run([], cifar_data_dir, out_dir)
    return out_dir


def test_members_reported_and_model_reloads(batchensemble_run):
    record = json.loads((batchensemble_run / "run.json").read_text())
    metrics = record["metrics"]
    assert record["model"]["name"] == "wide_resnet_batchensemble" and metrics["test/num_examples"] == NUM_TEST
    assert metrics["test/disagreement"] > 0 and {"test/accuracy_member_0", "test/accuracy_member_1"} <= set(metrics)
    assert {f"ood/mnist{kind}_auroc" for kind in ("", "_entropy", "_mutual_information")} <= set(metrics)
    model = ub.models.load(batchensemble_run)
    x = tf.random.stateless_normal((3, 28, 28, 1), seed=(1, 2))
    out = np.asarray(model(x, training=False))
    assert out.shape == (3, 2, 10) and not np.allclose(out[:, 0], out[:, 1])


def test_sigkill_after_the_first_checkpoint_then_rerun_is_exact(batchensemble_run, cifar_data_dir, tmp_path):
    got = cifar_e2e.sigkill_then_rerun("batchensemble", COMMON, cifar_data_dir, tmp_path / "killed")
    ref = json.loads((batchensemble_run / "run.json").read_text())["metrics"]
    assert without_timing(got) == without_timing(ref)


def test_bad_ensemble_size_and_sign_probability_refused(cifar_data_dir, tmp_path):
    code, out = run(["--ensemble_size=0", "--random_sign_init=0"], cifar_data_dir, tmp_path / "bad", expect_ok=False)
    assert code != 0 and "--ensemble_size must be >= 1" in out and not (tmp_path / "bad").exists()
    assert "--random_sign_init must be non-zero and at most 1 (> 0: the probability of +1; < 0: minus the stddev of a normal around 1), got 0.0" in out
