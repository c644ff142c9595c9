"""baselines/cifar/variational_inference.py end to end: the annealed KL reported and ramping,
sampled evaluation with the ensemble metrics and OOD kinds, L2 off the kernels, reload,
exact resume from a checkpoint, flags refused."""
import json

import numpy as np
import pytest
import tensorflow as tf

import cifar_e2e
import uncertainty_baselines as ub
from cifar_e2e import NUM_TEST, without_timing

COMMON = ["--dataset=fashion_mnist", "--depth=10", "--width=1", "--batch_size=32", "--train_epochs=2",
          "--num_eval_samples=3", "--kl_annealing_epochs=2", "--eval_on_ood", "--ood_dataset=mnist",
          "--steps_per_loop=2", "--log_interval_s=0", "--seed=6"]


def run(args, data_dir, output_dir, expect_ok=True):
    return cifar_e2e.run("variational_inference", [*COMMON, *args], data_dir, output_dir, expect_ok)


@pytest.fixture(scope="module")
def vi_run(cifar_data_dir, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("runs") / "vi"
    run([], cifar_data_dir, out_dir)
    return out_dir


def test_annealed_kl_and_sampled_evaluation_reported_and_model_reloads(vi_run):
    record = json.loads((vi_run / "run.json").read_text())
    metrics = record["metrics"]
    assert record["method"] == "variational_inference" and record["model"]["name"] == "wide_resnet_variational"
    assert metrics["test/num_examples"] == NUM_TEST and metrics["train/kl"] > 0 and metrics["train/l2"] > 0
    epochs = [json.loads(line) for line in (vi_run / "metrics.jsonl").read_text().splitlines()]
    assert 1.3 < epochs[1]["train/kl"] / epochs[0]["train/kl"] < 2.5  # Weight 1/2 after epoch 1, 1 after 2.
    assert metrics["test/disagreement"] > 0 and metrics["test/mutual_information"] > 0  # The samples differ.
    for key in ("test/accuracy_member_2", "ood/mnist_auroc", "ood/mnist_mutual_information_auroc"):
        assert key in metrics, key
    overrides = record["model"]["kwargs"]["l2_overrides"]
    assert overrides["group_1_conv"] == overrides["dense_kernel"] == 0.0 and "bn" not in overrides
    model = ub.models.load(vi_run)
    x = tf.random.stateless_normal((4, 28, 28, 1), seed=(1, 2))
    assert not np.array_equal(np.asarray(model(x, training=False)), np.asarray(model(x, training=False)))


def test_resume_from_the_first_checkpoint_is_exact(vi_run, cifar_data_dir, tmp_path):
    got = cifar_e2e.resume_from_first_checkpoint("variational_inference", COMMON, cifar_data_dir, vi_run, tmp_path / "resumed")
    ref = json.loads((vi_run / "run.json").read_text())["metrics"]
    assert without_timing(got) == without_timing(ref)  # Weight samples included: exactly equal.


def test_bad_method_flags_refused_all_at_once(cifar_data_dir, tmp_path):
    code, out = run(["--num_eval_samples=0", "--prior_stddev=0", "--init_stddev=0", "--kl_annealing_epochs=-2",
                     "--l2_scope=kernels"], cifar_data_dir, tmp_path / "bad", expect_ok=False)
    assert code != 0 and not (tmp_path / "bad").exists()
    for message in ("--num_eval_samples must be >= 1", "--prior_stddev must be > 0", "--init_stddev must be > 0",
                    "--kl_annealing_epochs must be >= 0", "--l2_scope=kernels would leave no L2 term"):
        assert message in out, message
    code, out = run(["--num_eval_samples=0", "--l2_scope=kernels", "--l2_kernel_means"], cifar_data_dir,
                    tmp_path / "bad", expect_ok=False)  # The kernel means keep an L2 term: that scope is valid.
    assert code != 0 and "--num_eval_samples must be >= 1" in out and "would leave no L2 term" not in out
