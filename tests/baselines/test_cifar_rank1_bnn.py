"""baselines/cifar/rank1_bnn.py end to end: the annealed KL reported and ramping, the members
reported with the ensemble metrics, reload, exact resume from a checkpoint, flags refused."""
import json

import numpy as np
import pytest
import tensorflow as tf

import cifar_e2e
import uncertainty_baselines as ub
from cifar_e2e import NUM_TEST, without_timing

COMMON = ["--dataset=fashion_mnist", "--depth=10", "--width=1", "--batch_size=32", "--train_epochs=2",
          "--ensemble_size=2", "--kl_annealing_epochs=2", "--steps_per_loop=2", "--log_interval_s=0", "--seed=5"]


def run(args, data_dir, output_dir, expect_ok=True):
    return cifar_e2e.run("rank1_bnn", [*COMMON, *args], data_dir, output_dir, expect_ok)


@pytest.fixture(scope="module")
def rank1_run(cifar_data_dir, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("runs") / "rank1_bnn"
    run([], cifar_data_dir, out_dir)
    return out_dir


def test_annealed_kl_reported_members_reported_and_model_reloads(rank1_run):
    record = json.loads((rank1_run / "run.json").read_text())
    metrics = record["metrics"]
    assert record["method"] == "rank1_bnn" and record["model"]["name"] == "wide_resnet_rank1"
    assert metrics["test/num_examples"] == NUM_TEST and metrics["train/kl"] > 0
    # Annealed over 2 epochs: the last step of epoch 1 weighs 1/2, of epoch 2 weighs 1.
    epochs = [json.loads(line) for line in (rank1_run / "metrics.jsonl").read_text().splitlines()]
    assert 1.3 < epochs[1]["train/kl"] / epochs[0]["train/kl"] < 2.5  # 1.6: the KL falls as factors near the prior.
    assert metrics["test/disagreement"] > 0 and {"test/accuracy_member_1", "test/mutual_information"} <= set(metrics)
    model = ub.models.load(rank1_run)
    out = np.asarray(model(tf.random.stateless_normal((3, 28, 28, 1), seed=(1, 2)), training=False))
    assert out.shape == (3, 2, 10) and not np.allclose(out[:, 0], out[:, 1])


def test_resume_from_the_first_checkpoint_is_exact(rank1_run, cifar_data_dir, tmp_path):
    got = cifar_e2e.resume_from_first_checkpoint("rank1_bnn", COMMON, cifar_data_dir, rank1_run, tmp_path / "resumed")
    ref = json.loads((rank1_run / "run.json").read_text())["metrics"]
    assert without_timing(got) == without_timing(ref)  # Factor samples included: exactly equal.


def test_bad_method_flags_refused_all_at_once(cifar_data_dir, tmp_path):
    code, out = run(["--ensemble_size=0", "--distribution=laplace", "--prior_stddev=0", "--init_stddev=-1",
                     "--kl_annealing_epochs=-1", "--random_sign_init=1.5"], cifar_data_dir, tmp_path / "bad",
                    expect_ok=False)
    assert code != 0 and not (tmp_path / "bad").exists()
    for message in ("--ensemble_size must be >= 1", "--distribution must be one of ('normal', 'cauchy')",
                    "--prior_stddev must be > 0", "--init_stddev must be > 0", "--kl_annealing_epochs must be >= 0",
                    "--random_sign_init must be non-zero and at most 1 (> 0: the probability of +1; < 0: minus the stddev of a normal around 1), got 1.5"):
        assert message in out, message
