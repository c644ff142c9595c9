"""baselines/cifar/deterministic.py end to end on a tiny prepared Fashion-MNIST subset.

Runs the script as a subprocess (as a user would): outputs and reference keys, every test
example scored, exact resume after SIGKILL at random points, 2 mirrored replicas vs 1
device, eval-only, ub.models.load round trip and tampered weights, bad flags failing fast.
"""
import json
import random
import signal
import tarfile
import time

import numpy as np
import pytest

import cifar_e2e
from cifar_e2e import CORRUPTIONS, NUM_TEST, NUM_TRAIN, SEVERITIES, without_timing
from uncertainty_baselines.runs import checkpoint, summaries

SCRIPT = "deterministic"
# WRN-10-1, 8 steps per epoch, 3 epochs; evaluation on all 200 test images, + 150 MNIST
# digits (OOD), and the 2 x 2 corrupted sets at epochs 2 and 3.
COMMON = ["--dataset=fashion_mnist", "--depth=10", "--width=1", "--batch_size=32", "--train_epochs=3",
          "--eval_on_ood", "--ood_dataset=mnist", "--corruptions_interval=2",
          f"--corruption_types={','.join(CORRUPTIONS)}", f"--severities={','.join(map(str, SEVERITIES))}",
          "--steps_per_loop=2", "--log_interval_s=0", "--seed=7"]


def launch(args, data_dir, output_dir):
    return cifar_e2e.launch(SCRIPT, [*COMMON, *args], data_dir, output_dir)


def run(args, data_dir, output_dir, expect_ok=True):
    return cifar_e2e.run(SCRIPT, [*COMMON, *args], data_dir, output_dir, expect_ok)


@pytest.fixture(scope="module")
def reference_run(cifar_data_dir, tmp_path_factory):
    """The uninterrupted run every other run is compared with."""
    out_dir = tmp_path_factory.mktemp("runs") / "reference"
    _, out = run([], cifar_data_dir, out_dir)
    return out_dir, out


def test_outputs_reference_keys_and_every_example_scored(reference_run):
    out_dir, out = reference_run
    record = json.loads((out_dir / "run.json").read_text())
    for key in ("flags", "packages", "git", "hardware", "data_fingerprint", "seed", "wall_time_s", "model"):
        assert record[key] is not None, key
    metrics = record["metrics"]
    for key in ("test/accuracy", "test/negative_log_likelihood", "test/ece", "test/brier",
                "ood/mnist_auroc", "ood/mnist_aupr_in", "ood/mnist_aupr_out", "ood/mnist_fpr_at_95_tpr",
                "ood/mnist_entropy_auroc", "ood/mnist_dempster_shafer_auroc",
                "train/ms_per_example", "test/ms_per_example", "train/accuracy", "train/loss",
                "test/accuracy_mean_corrupted", "test/ece_mean_corrupted", "test/negative_log_likelihood_contrast_3",
                "test/accuracy_gaussian_noise", "test/accuracy_mean_severity_1"):
        assert key in metrics, key
    assert metrics["test/num_examples"] == NUM_TEST  # Padded last batch (200 = 6 x 32 + 8) is masked, not dropped.
    assert record["num_params"] > 0 and record["steps"] == 3 * (NUM_TRAIN // 32)
    lines = summaries.read_metrics(out_dir)
    assert [(r["epoch"], r["step"]) for r in lines] == [(1, 8), (2, 16), (3, 24)]
    assert ["test/accuracy_mean_corrupted" in r for r in lines] == [False, True, True]
    assert without_timing(lines[-1]) == {"step": 24, "epoch": 3, **without_timing(metrics)}
    assert list((out_dir / "summaries").glob("events.out.tfevents.*"))
    assert [p.name for p in checkpoint.list_checkpoints(out_dir / "checkpoints")] == [
        "ckpt-000000008", "ckpt-000000016", "ckpt-000000024"]
    assert "test/accuracy" in out and "ood/mnist_auroc" in out  # The final table.
    assert "ETA" in out


def test_sigkill_at_random_points_then_restart_gives_the_same_metrics(reference_run, cifar_data_dir, tmp_path):
    ref_dir, _ = reference_run
    out_dir = tmp_path / "killed"
    rng = random.Random(1234)
    ckpts = out_dir / "checkpoints"
    # Kill points: a random time after the start (possibly before the first checkpoint),
    # then a random moment after the 1st and after the 2nd checkpoint of the 3 epochs.
    for after_checkpoints, delay in ((0, rng.uniform(2.0, 6.0)), (1, rng.uniform(0.0, 1.0)),
                                     (2, rng.uniform(0.0, 0.6))):
        proc = launch([], cifar_data_dir, out_dir)
        deadline = time.time() + 120
        while len(checkpoint.list_checkpoints(ckpts)) < after_checkpoints and proc.poll() is None:
            assert time.time() < deadline, "run made no progress"
            time.sleep(0.05)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    earlier_wall_s = checkpoint.load(checkpoint.list_checkpoints(ckpts)[-1]).state["wall_time_s"]
    recorded = json.loads((out_dir / "flags.json").read_text())
    del recorded["l2_scope"]  # As a run started before the flag existed: resumes at its default.
    (out_dir / "flags.json").write_text(json.dumps(recorded))
    _, out = run([], cifar_data_dir, out_dir)
    assert "resumed from" in out
    assert json.loads((out_dir / "flags.json").read_text())["l2_scope"] == "all"
    ref = json.loads((ref_dir / "run.json").read_text())
    got = json.loads((out_dir / "run.json").read_text())
    assert earlier_wall_s > 0 and got["wall_time_s"] > earlier_wall_s  # summed over restarts
    assert without_timing(got["metrics"]) == without_timing(ref["metrics"])  # Exactly equal.
    assert got["data_fingerprint"] == ref["data_fingerprint"]
    assert [without_timing(r) for r in summaries.read_metrics(out_dir)] == \
        [without_timing(r) for r in summaries.read_metrics(ref_dir)]
    ref_w = checkpoint.load(checkpoint.list_checkpoints(ref_dir / "checkpoints")[-1]).parts
    got_w = checkpoint.load(checkpoint.list_checkpoints(ckpts)[-1]).parts
    for part in ("model", "optimizer"):
        for k in ref_w[part]:
            np.testing.assert_array_equal(got_w[part][k], ref_w[part][k])


def test_two_mirrored_replicas_match_one_device(reference_run, cifar_data_dir, tmp_path):
    ref_dir, _ = reference_run
    run(["--strategy=mirrored", "--num_cores=2"], cifar_data_dir, tmp_path / "mirrored")
    got = json.loads((tmp_path / "mirrored" / "run.json").read_text())
    ref = json.loads((ref_dir / "run.json").read_text())
    assert got["num_replicas"] == 2
    for key in ("test/negative_log_likelihood", "test/brier", "train/loss"):
        assert got["metrics"][key] == pytest.approx(ref["metrics"][key], rel=2e-3), key
    assert abs(got["metrics"]["test/accuracy"] - ref["metrics"]["test/accuracy"]) <= 2 / NUM_TEST


def test_eval_only_reproduces_final_metrics(reference_run, cifar_data_dir, tmp_path):
    ref_dir, _ = reference_run
    run(["--eval_only", f"--checkpoint_dir={ref_dir}"], cifar_data_dir, tmp_path / "eval")
    got = json.loads((tmp_path / "eval" / "run.json").read_text())["metrics"]
    ref = json.loads((ref_dir / "run.json").read_text())["metrics"]
    for key in ("test/accuracy", "test/negative_log_likelihood", "test/ece", "ood/mnist_auroc",
                "test/accuracy_mean_corrupted"):
        assert got[key] == pytest.approx(ref[key], abs=1e-6), key


def test_released_bundle_evaluates_to_the_run_metrics(reference_run, cifar_data_dir, tmp_path):
    """As a user publishes and a reader checks: release the run as an archive, then score the
    archive with --eval_only (forced: a developer's tree may hold uncommitted changes)."""
    import subprocess
    import sys
    ref_dir, _ = reference_run
    archive = tmp_path / "wrn.tar.gz"
    done = subprocess.run([sys.executable, "-m", "uncertainty_baselines.release", str(ref_dir), "--out", str(archive),
                           "--force"], capture_output=True, text=True, cwd=cifar_e2e.REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    card = tarfile.open(archive).extractfile("wrn/README.md").read().decode()
    assert "python baselines/cifar/deterministic.py --data_dir=" in card and "--dataset=fashion_mnist" in card
    run(["--eval_only", f"--checkpoint_dir={archive}"], cifar_data_dir, tmp_path / "eval")
    got = json.loads((tmp_path / "eval" / "run.json").read_text())["metrics"]
    ref = json.loads((ref_dir / "run.json").read_text())["metrics"]
    for key in ("test/accuracy", "test/negative_log_likelihood", "test/ece", "ood/mnist_auroc"):
        assert got[key] == pytest.approx(ref[key], abs=1e-6), key


def test_models_load_round_trip_and_tampered_weights_refused(reference_run, tmp_path):
    import shutil

    import tensorflow as tf
    import uncertainty_baselines as ub
    ref_dir, _ = reference_run
    model = ub.models.load(ref_dir)
    saved = checkpoint.load(checkpoint.list_checkpoints(ref_dir / "checkpoints")[-1]).parts["model"]
    for var, value in zip(model.variables, saved.values()):
        np.testing.assert_array_equal(np.asarray(var), value)
    x = tf.random.stateless_normal((4, 28, 28, 1), seed=(1, 2))
    assert model(x, training=False).shape == (4, 10)
    copy = tmp_path / "copy"
    shutil.copytree(ref_dir, copy)
    weights = checkpoint.list_checkpoints(copy / "checkpoints")[-1] / "model.npz"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(checkpoint.CorruptCheckpointError, match="model.npz has sha256"):
        ub.models.load(copy)


@pytest.mark.parametrize("args,message", [
    (["--train_epochs=-1"], "--train_epochs must be >= 1"),
    (["--dataset=imagenet9"], "--dataset='imagenet9' is unknown"),
    (["--strategy=mirrored", "--num_cores=2", "--batch_size=33"], "not divisible by the 2 replicas"),
])
def test_bad_flags_fail_before_any_work(args, message, cifar_data_dir, tmp_path):
    start = time.time()
    code, out = run(args, cifar_data_dir, tmp_path / "bad", expect_ok=False)
    assert code != 0 and message in out
    assert not (tmp_path / "bad").exists()  # Nothing written.
    assert time.time() - start < 30


def test_output_dir_with_other_flags_refused(reference_run, cifar_data_dir):
    ref_dir, _ = reference_run
    code, out = run(["--l2=0.001"], cifar_data_dir, ref_dir, expect_ok=False)
    assert code != 0 and "holds a run with other flags (l2: 0.0002 -> 0.001)" in out
