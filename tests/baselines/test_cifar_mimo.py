"""baselines/cifar/mimo.py end to end: M heads reported as members, each member's batch
its own seeded shuffle of the repeated batch (exact resume after SIGKILL), reload."""
import json

import numpy as np
import pytest
import tensorflow as tf

import cifar_e2e
import uncertainty_baselines as ub
from cifar_e2e import NUM_TEST, NUM_TRAIN, without_timing
from uncertainty_baselines.runs import summaries

COMMON = ["--dataset=fashion_mnist", "--depth=10", "--width=1", "--batch_size=32", "--train_epochs=2",
          "--ensemble_size=2", "--batch_repetitions=2", "--steps_per_loop=2", "--log_interval_s=0", "--seed=5",
          "--eval_on_ood", "--ood_dataset=mnist"]


def run(args, data_dir, output_dir, expect_ok=True):
    return cifar_e2e.run("mimo", [*COMMON, *args], data_dir, output_dir, expect_ok)


@pytest.fixture(scope="module")
def mimo_run(cifar_data_dir, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("runs") / "mimo"
    run([], cifar_data_dir, out_dir)
    return out_dir


def test_members_are_the_heads_and_train_on_repeated_batches(mimo_run):
    record = json.loads((mimo_run / "run.json").read_text())
    metrics = record["metrics"]
    assert record["model"]["name"] == "wide_resnet_mimo" and metrics["test/num_examples"] == NUM_TEST
    assert {"test/accuracy_member_0", "test/accuracy_member_1", "test/disagreement"} <= set(metrics)
    assert metrics["test/disagreement"] > 0  # Independently shuffled members learn different functions.
    assert {f"ood/mnist{kind}_auroc" for kind in ("", "_entropy", "_mutual_information")} <= set(metrics)
    first_epoch = summaries.read_metrics(mimo_run)[0]
    assert first_epoch["step"] == NUM_TRAIN // (32 // 2)  # A step reads batch_size / repetitions examples ...
    model = ub.models.load(mimo_run)
    x = tf.random.stateless_normal((3, 28, 28, 2), seed=(1, 2))  # ... the model takes M stacked images.
    assert model(x, training=False).shape == (3, 2, 10)


def test_sigkill_after_the_first_checkpoint_then_rerun_is_exact(mimo_run, cifar_data_dir, tmp_path):
    got = cifar_e2e.sigkill_then_rerun("mimo", COMMON, cifar_data_dir, tmp_path / "killed")
    ref = json.loads((mimo_run / "run.json").read_text())["metrics"]
    assert without_timing(got) == without_timing(ref)  # The per-member shuffles are replayed exactly.


def test_bad_method_flags_refused(cifar_data_dir, tmp_path):
    code, out = run(["--ensemble_size=0", "--batch_repetitions=0"], cifar_data_dir, tmp_path / "bad", expect_ok=False)
    assert code != 0 and "--ensemble_size must be >= 1" in out and "--batch_repetitions must be >= 1" in out
    code, out = run(["--batch_repetitions=3"], cifar_data_dir, tmp_path / "bad", expect_ok=False)
    assert code != 0 and "--batch_size=32 must be divisible by --batch_repetitions=3" in out
    assert not (tmp_path / "bad").exists()
