"""Smoke runs of baselines/imagenet/{dropout,batchensemble,sngp,ensemble}.py on the prepared
miniature ImageNet at 32 px, one epoch each: each finishes, records its ResNet-50 method
model and reports its method's flat metrics."""
import json

import pytest

import script_runs

COMMON = ["--image_size=32", "--batch_size=16", "--train_epochs=1", "--base_learning_rate=0.01",
          "--lr_warmup_epochs=0", "--steps_per_loop=4", "--log_interval_s=0"]


def record(out_dir):
    return json.loads((out_dir / "run.json").read_text())


@pytest.mark.parametrize("script, args, model, keys", [
    ("dropout", ["--num_dropout_samples=2"], "resnet50_mc_dropout", ("test/mutual_information",)),
    ("batchensemble", ["--ensemble_size=2"], "resnet50_batchensemble", ("test/accuracy_member_1",)),
    ("sngp", ["--num_inducing=64"], "resnet50_sngp", ()),
])
def test_method_scripts_run_on_resnet50(script, args, model, keys, imagenet_data_dir, tmp_path):
    script_runs.run("imagenet", script, [*COMMON, *args], imagenet_data_dir, tmp_path / script)
    run = record(tmp_path / script)
    assert run["model"]["name"] == model and run["method"] in (script, "mc_dropout")
    for key in ("test/accuracy", "test/negative_log_likelihood", "test/ece", *keys):
        assert key in run["metrics"], key


def test_ensemble_trains_its_missing_member(imagenet_data_dir, tmp_path):
    """Member 0 made by deterministic.py (seed 1), member 1 trained by the ensemble itself
    (--train_missing_members, seed --seed + 1 = 2), then both evaluated as one model."""
    script_runs.run("imagenet", "deterministic", [*COMMON, "--seed=1"], imagenet_data_dir, tmp_path / "seed1")
    script_runs.run("imagenet", "ensemble", [*COMMON, "--seed=1", "--ensemble_size=2", "--train_missing_members",
                                             f"--run_dirs={tmp_path / 'seed1'},{tmp_path / 'seed2'}"],
                    imagenet_data_dir, tmp_path / "ensemble")
    run = record(tmp_path / "ensemble")
    assert run["members"] == [str(tmp_path / "seed1"), str(tmp_path / "seed2")]
    assert record(tmp_path / "seed2")["seed"] == 2 and record(tmp_path / "seed2")["method"] == "deterministic"
    assert {"test/accuracy_member_0", "test/accuracy_member_1", "test/disagreement"} <= set(run["metrics"])
