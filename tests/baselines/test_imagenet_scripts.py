"""The ImageNet baselines end to end on a prepared 4-class miniature ImageNet at 32 px, in
one file so the data is prepared once: deterministic.py's outputs and flat metric names
(clean, ImageNet-C with its mCE from the AlexNet errors, ImageNet-A and -V2), run.json,
exact resume from a checkpoint and bad flags refused before anything is written; one epoch of
each method script (dropout, batchensemble, sngp) recording its ResNet-50 method model and
its metrics; ensemble.py training its missing member beside deterministic.py's run."""
import json

import pytest

import imagenet_e2e
import script_runs
from uncertainty_baselines.runs import summaries

# ResNet-50 (1,000-way head: a subset keeps the labels), 4 steps per epoch, 2 epochs; the
# 2 types x 5 severities of ImageNet-C at the end.
TRAINING = ["--image_size=32", "--batch_size=16", "--train_epochs=2", "--base_learning_rate=0.01",
            "--lr_warmup_epochs=1", "--steps_per_loop=2", "--log_interval_s=0"]
COMMON = [*TRAINING, "--corruptions_interval=2", "--shifted_datasets=imagenet_a,imagenet_v2",
          f"--corruption_types={','.join(imagenet_e2e.CORRUPTIONS)}",
          f"--severities={','.join(map(str, imagenet_e2e.SEVERITIES))}"]
METHOD = ["--image_size=32", "--batch_size=16", "--train_epochs=1", "--base_learning_rate=0.01",
          "--lr_warmup_epochs=0", "--steps_per_loop=4", "--log_interval_s=0"]


@pytest.fixture(scope="module")
def data_dir(imagenet_data_dir):
    return imagenet_data_dir


@pytest.fixture(scope="module")
def reference_run(data_dir, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("runs") / "reference"
    _, out = script_runs.run("imagenet", "deterministic", COMMON, data_dir, out_dir)
    return out_dir, out


def test_outputs_run_record_and_flat_metric_names(reference_run):
    out_dir, out = reference_run
    record = json.loads((out_dir / "run.json").read_text())
    for key in ("flags", "packages", "git", "hardware", "data_fingerprint", "seed", "wall_time_s"):
        assert record[key] is not None, key
    assert record["model"]["name"] == "resnet50"
    assert record["model"]["kwargs"]["input_shape"] == [32, 32, 3] and record["model"]["kwargs"]["num_classes"] == 1000
    flags = record["flags"]
    assert (flags["dataset"], flags["l2"], flags["lr_decay_ratio"]) == ("imagenet2012", 1e-4, 0.1)
    assert [round(float(f) * 90) for f in flags["lr_decay_epochs"]] == [30, 60, 80]
    metrics = record["metrics"]
    for key in ("test/accuracy", "test/negative_log_likelihood", "test/ece", "test/brier", "train/loss",
                "test/accuracy_mean_corrupted", "test/ece_mean_corrupted", "test/accuracy_gaussian_noise",
                "test/negative_log_likelihood_contrast_3", "test/accuracy_mean_severity_1",
                "test/mean_corruption_error", "test/corruption_error_contrast", "test/mce", "imagenet_a/accuracy",
                "imagenet_a/negative_log_likelihood", "imagenet_a/ece", "imagenet_v2/accuracy", "imagenet_v2/ece"):
        assert key in metrics, key
    # mCE: each type's mean error over the 5 severities / AlexNet's, averaged (BASELINES.md).
    alexnet = {"gaussian_noise": 0.886428, "contrast": 0.853204}
    ce = {t: (1 - metrics[f"test/accuracy_{t}"]) / e for t, e in alexnet.items()}
    assert metrics["test/corruption_error_gaussian_noise"] == pytest.approx(ce["gaussian_noise"])
    assert metrics["test/mean_corruption_error"] == pytest.approx((ce["gaussian_noise"] + ce["contrast"]) / 2)
    assert metrics["test/mce"] <= 1  # The max calibration error, not overwritten.
    assert metrics["test/num_examples"] == imagenet_e2e.NUM_TEST
    assert record["steps"] == 2 * imagenet_e2e.NUM_TRAIN // 16
    assert [(r["epoch"], r["step"]) for r in summaries.read_metrics(out_dir)] == [(1, 4), (2, 8)]
    assert "test/accuracy_mean_corrupted" in out  # The results table.


def test_resume_from_the_first_checkpoint_is_exact(reference_run, data_dir, tmp_path):
    script_runs.rerun_a_copy_from_its_first_checkpoint("imagenet", "deterministic", COMMON, data_dir,
                                                       reference_run[0], tmp_path / "run")
    resumed = json.loads((tmp_path / "run" / "run.json").read_text())["metrics"]
    reference = json.loads((reference_run[0] / "run.json").read_text())["metrics"]
    assert script_runs.without_timing(resumed) == script_runs.without_timing(reference)


def test_bad_flags_refused_before_anything_is_written(data_dir, tmp_path):
    code, out = script_runs.run("imagenet", "deterministic", [*COMMON, "--image_size=8", "--dataset=cifar10",
                                                              "--eval_on_ood"], data_dir, tmp_path / "bad", expect_ok=False)
    assert code != 0
    assert "--image_size must be >= 32, got 8" in out and "--dataset must be imagenet2012" in out
    assert "--eval_on_ood: the ImageNet baselines have no OOD set" in out
    assert not (tmp_path / "bad").exists()


def record(out_dir):
    return json.loads((out_dir / "run.json").read_text())


@pytest.mark.parametrize("script, args, model, keys", [
    ("dropout", ["--num_dropout_samples=2"], "resnet50_mc_dropout", ("test/mutual_information",)),
    ("batchensemble", ["--ensemble_size=2"], "resnet50_batchensemble", ("test/accuracy_member_1",)),
    ("sngp", ["--num_inducing=64"], "resnet50_sngp", ()),
])
def test_method_scripts_run_on_resnet50(script, args, model, keys, data_dir, tmp_path):
    script_runs.run("imagenet", script, [*METHOD, *args], data_dir, tmp_path / script)
    run = record(tmp_path / script)
    assert run["model"]["name"] == model and run["method"] in (script, "mc_dropout")
    for key in ("test/accuracy", "test/negative_log_likelihood", "test/ece", *keys):
        assert key in run["metrics"], key


def test_ensemble_trains_its_missing_member(reference_run, data_dir, tmp_path):
    """Member 0 is the reference deterministic.py run (seed 42), member 1 is trained by the
    ensemble itself (--train_missing_members, seed --seed + 1 = 43) with the same training
    flags, then both are evaluated as one model."""
    member_0 = reference_run[0]
    script_runs.run("imagenet", "ensemble", [*TRAINING, "--seed=42", "--ensemble_size=2", "--train_missing_members",
                                             f"--run_dirs={member_0},{tmp_path / 'seed43'}"],
                    data_dir, tmp_path / "ensemble")
    run = record(tmp_path / "ensemble")
    assert run["members"] == [str(member_0), str(tmp_path / "seed43")]
    assert record(tmp_path / "seed43")["seed"] == 43 and record(tmp_path / "seed43")["method"] == "deterministic"
    assert {"test/accuracy_member_0", "test/accuracy_member_1", "test/disagreement"} <= set(run["metrics"])
