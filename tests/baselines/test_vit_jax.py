"""End-to-end runs of baselines/vit_jax (Flax ViT, deterministic and BatchEnsemble) on a tiny
CIFAR-10: the suite's outputs and flat metric names, resume after SIGKILL, 2 devices vs 1,
fine-tuning from a big_vision checkpoint, and bad input refused before anything is written.

The uninterrupted reference and the BatchEnsemble run are made in this process (the test
session has already paid for importing TensorFlow); the runs that must be separate
processes (killed, resumed, 2 devices) are subprocesses of the script, as a user runs it.
"""
import importlib.util
import json
import pathlib

import numpy as np
import pytest

import script_runs
import jax_helpers
from script_runs import REPO, without_timing
from uncertainty_baselines.jax_training import config as config_lib, experiment

CONFIGS = "baselines/vit_jax/configs"
TINY = ["--config.model.width=16", "--config.model.depth=2", "--config.model.mlp_dim=32",
        "--config.model.num_heads=2", "--config.model.patch_size=(8,8)", "--config.batch_size=16",
        "--config.eval_batch_size=40", "--config.ood_datasets=('random_gaussian',)",
        "--config.corruption_types=('gaussian_noise',)", "--config.severities=(1,)",
        "--config.corruptions_interval=4", "--config.train_epochs=4", "--config.lr.warmup_steps=5"]
DETERMINISTIC_ARGS = [f"--config={CONFIGS}/cifar10_vit_deterministic.py", *TINY]


def script_method(name):
    """The Method a baseline script defines (the script imported as a module)."""
    spec = importlib.util.spec_from_file_location(f"vit_jax_{name}", REPO / "baselines" / "vit_jax" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.DETERMINISTIC if name == "deterministic" else module.BATCHENSEMBLE


def config_of(args):
    return config_lib.parse_config([a.replace(CONFIGS, str(REPO / CONFIGS)) for a in args])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return jax_helpers.prepared(tmp_path_factory)


@pytest.fixture
def compile_cache(tmp_path_factory, monkeypatch):
    """Subprocesses share JAX's persistent compilation cache: the resumed run reuses the
    killed run's compiled steps (halves its time on 2 cores; the programs are the same)."""
    folder = tmp_path_factory.getbasetemp() / "jax_compilation_cache"
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(folder))
    monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    return folder


@pytest.fixture(scope="module")
def reference(data_dir, tmp_path_factory):
    """An uninterrupted deterministic run on one device: (folder, run.json)."""
    out = tmp_path_factory.mktemp("vit_jax") / "reference"
    experiment.run(config_of(DETERMINISTIC_ARGS), script_method("deterministic"), output_dir=out,
                   data_dir=str(data_dir), save_predictions=True)
    return out, json.loads((out / "run.json").read_text())


def test_outputs_run_record_and_flat_metric_names(reference, data_dir):
    out, record = reference
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["step"]) for r in lines] == [(1, 10), (2, 20), (3, 30), (4, 40)]
    metrics = record["metrics"]
    for name in ("test/accuracy", "test/negative_log_likelihood", "test/ece", "test/brier", "train/loss",
                 "train/accuracy", "train/ms_per_example", "test/ms_per_example", "ood/random_gaussian_auroc",
                 "ood/random_gaussian_aupr_in", "ood/random_gaussian_fpr_at_95_tpr", "test/accuracy_gaussian_noise_1",
                 "test/accuracy_mean_corrupted", "test/ece_mean_corrupted"):
        assert np.isfinite(metrics[name]), name
    assert metrics["test/num_examples"] == 40  # The whole test split, scored once.
    assert metrics["test/accuracy"] * 40 == pytest.approx(round(metrics["test/accuracy"] * 40))
    assert record["framework"] == "jax" and record["num_devices"] == 1 and record["steps"] == 40
    assert record["model"]["kwargs"]["width"] == 16 and record["jax_packages"]["flax"]
    flags = json.loads((out / "flags.json").read_text())
    assert flags["method"] == "deterministic" and flags["model.width"] == 16 and flags["model.patch_size"] == [8, 8]
    ckpt = out / "checkpoints" / "ckpt-000000040"
    assert {p.name for p in ckpt.iterdir()} == {"params.npz", "opt_state.npz", "manifest.json"}
    # The run's own params.npz is a big_vision-layout checkpoint.
    with np.load(ckpt / "params.npz") as npz:
        assert "Transformer/encoderblock_1/MultiHeadDotProductAttention_0/query/kernel" in npz.files
    # The data fingerprint is the Keras baselines' (same algorithm over the same split).
    import tensorflow as tf
    from uncertainty_baselines import datasets
    from uncertainty_baselines.training import evaluation
    test = datasets.get("cifar10", "test", data_dir=str(data_dir)).load(batch_size=40)
    assert record["data_fingerprint"] == evaluation.data_fingerprint("cifar10", test, tf.distribute.get_strategy())
    assert metrics["train/accuracy"] > 0.3  # 10 separable colour classes: it learns.
    # What a report draws, one line per evaluation as the Keras baselines write it.
    from uncertainty_baselines.runs import curves
    drawn = curves.read_curves(out)
    assert [c["step"] for c in drawn] == [10, 20, 30, 40]
    last = drawn[-1]
    assert set(last["reliability"]) == {"test", "test/gaussian_noise_1"}
    assert sum(last["reliability"]["test"]["count"]) == 40
    roc = last["roc"]["random_gaussian"]
    assert (roc["num_in"], roc["num_ood"]) == (40, 1000) and roc["fpr"][0] == 0 and roc["tpr"][-1] == 1
    auc = float(np.sum(np.diff(roc["fpr"]) * (np.array(roc["tpr"][1:]) + np.array(roc["tpr"][:-1])) / 2))
    assert auc == pytest.approx(metrics["ood/random_gaussian_auroc"], abs=0.02)  # Subsampled to <= 201 points.


def test_save_predictions_writes_every_evaluated_set_in_the_suite_format(reference):
    from uncertainty_baselines.runs import predictions
    sets = predictions.read_predictions(reference[0] / "predictions")  # Verifies every sha256.
    assert set(sets) == {"test", "ood_random_gaussian", "corrupted_gaussian_noise_1"}
    test = sets["test"].arrays
    assert test["logits"].shape == (40, 10) and list(test["id"]) == list(range(40))
    accuracy = float(np.mean(test["logits"].argmax(1) == test["labels"]))
    assert accuracy == pytest.approx(reference[1]["metrics"]["test/accuracy"])  # The scored predictions.
    ood = sets["ood_random_gaussian"].arrays
    assert len(ood["id"]) == 1040 and ood["is_in_distribution"].sum() == 40 and (ood["labels"][40:] == -1).all()


def test_resume_after_sigkill_gives_the_uninterrupted_metrics(reference, data_dir, tmp_path, compile_cache):
    out = tmp_path / "killed"
    console = script_runs.kill_after_first_checkpoint_then_rerun("vit_jax", "deterministic", DETERMINISTIC_ARGS,
                                                                data_dir, out)
    assert "resumed from" in console
    resumed = json.loads((out / "run.json").read_text())
    assert without_timing(resumed["metrics"]) == without_timing(reference[1]["metrics"])
    lines = [without_timing(json.loads(line)) for line in (out / "metrics.jsonl").read_text().splitlines()]
    expected = [without_timing(json.loads(line)) for line in (reference[0] / "metrics.jsonl").read_text().splitlines()]
    assert lines == expected  # No duplicated or missing epochs, every value equal.
    assert (out / "curves.jsonl").read_text() == (reference[0] / "curves.jsonl").read_text()


def test_two_devices_match_one_device(reference, data_dir, tmp_path, monkeypatch, compile_cache):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    out = tmp_path / "two_devices"
    script_runs.run("vit_jax", "deterministic", DETERMINISTIC_ARGS, data_dir, out)
    two = json.loads((out / "run.json").read_text())
    assert two["num_devices"] == 2
    one, two = reference[1]["metrics"], two["metrics"]
    for name in ("train/loss", "test/negative_log_likelihood", "test/brier", "ood/random_gaussian_auroc",
                 "test/negative_log_likelihood_gaussian_noise_1"):
        assert two[name] == pytest.approx(one[name], rel=1e-4, abs=1e-6), name
    assert abs(two["test/accuracy"] - one["test/accuracy"]) <= 1 / 40


def test_batchensemble_fine_tunes_from_a_big_vision_checkpoint(data_dir, tmp_path):
    layout = jax_helpers.big_vision_layout(depth=2, width=16, mlp_dim=32, num_heads=2, patch=8, grid=4,
                                            num_classes=1000)
    jax_helpers.write_big_vision_npz(tmp_path / "upstream.npz", layout)
    args = [f"--config={CONFIGS}/cifar10_vit_batchensemble.py", *TINY, "--config.model.be_layers=(1,)",
            "--config.train_epochs=1", "--config.corruptions_interval=0",
            f"--config.model_init={tmp_path / 'upstream.npz'}"]
    out = tmp_path / "be"
    metrics = experiment.run(config_of(args), script_method("batchensemble"), output_dir=out, data_dir=str(data_dir),
                             save_predictions=True)
    for name in ("test/accuracy", "test/ensemble_negative_log_likelihood", "test/gibbs_negative_log_likelihood",
                 "test/disagreement", "test/mutual_information", "test/accuracy_member_0", "test/ece_member_2",
                 "ood/random_gaussian_auroc", "ood/random_gaussian_entropy_auroc",
                 "ood/random_gaussian_mutual_information_auroc"):
        assert np.isfinite(metrics[name]), name
    assert "test/accuracy_member_3" not in metrics
    record = json.loads((out / "run.json").read_text())
    loaded = record["pretrained"]
    # Everything but the head and the fast weights of encoder layer 1 came from upstream.npz.
    assert loaded["num_loaded"] == len(layout) - 2 and "head/kernel" in loaded["kept_init"]
    assert "Transformer/encoderblock_1/MlpBlock_0/Dense_1/fast_weight_gamma" in loaded["kept_init"]
    from uncertainty_baselines.runs import predictions
    assert predictions.read_set(out / "predictions", "test").arrays["logits"].shape == (40, 3, 10)  # Members kept.


def run_cli(monkeypatch, capsys, args):
    """baselines/vit_jax/<script>.py's main in this process: (exit status, stderr)."""
    monkeypatch.setattr("sys.argv", ["deterministic.py", *args])
    with pytest.raises(SystemExit) as exit_:
        experiment.main(script_method("deterministic"))
    return exit_.value.code, capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--config=NO_GET_CONFIG"], "does not define get_config()"),
    ([*DETERMINISTIC_ARGS, "--config.model.widht=8"], "has no field 'widht'; did you mean 'width'?"),
    ([*DETERMINISTIC_ARGS, "--config.batch_size=sixteen"], "--config.batch_size=sixteen: wrong type, the field is int"),
    ([*DETERMINISTIC_ARGS, "--config.model.be_layers=(5,)"], "config.model (from "),
    ([f"--config={CONFIGS}/cifar10_vit_batchensemble.py", *TINY], "model.be_layers [3] are not encoder layers 0..1"),
    ([f"--config={CONFIGS}/cifar10_vit_batchensemble.py", *TINY, "--config.model.be_layers=(1,)"],
     "method: this config is for 'batchensemble', this script runs 'deterministic'"),
    ([*DETERMINISTIC_ARGS, "--config.model.patch_size=(5,5)"], "patch_size (5, 5) does not tile the (32, 32) images"),
    ([*DETERMINISTIC_ARGS, "--config.model_init=WIDE_NPZ"],
     "embedding/kernel: checkpoint shape (8, 8, 3, 32), model shape (8, 8, 3, 16)"),
], ids=["no_get_config", "unknown_field", "wrong_type", "field_of_another_method", "bad_value",
        "wrong_script", "patch_vs_image", "pretrained_shapes"])
def test_bad_input_exits_2_with_one_clear_line_before_writing(args, message, data_dir, tmp_path, monkeypatch, capsys):
    no_get_config = tmp_path / "no_get_config.py"
    no_get_config.write_text("import ml_collections\nCONFIG = ml_collections.ConfigDict()\n")
    wide = jax_helpers.big_vision_layout(depth=2, width=32, mlp_dim=64, num_heads=2, patch=8, grid=4, num_classes=10)
    jax_helpers.write_big_vision_npz(tmp_path / "wide.npz", wide)
    args = [a.replace("NO_GET_CONFIG", str(no_get_config)).replace("WIDE_NPZ", str(tmp_path / "wide.npz"))
            .replace(CONFIGS, str(REPO / CONFIGS)) for a in args]
    out = tmp_path / "never_written"
    status, err = run_cli(monkeypatch, capsys, [*args, f"--data_dir={data_dir}", f"--output_dir={out}"])
    assert status == 2
    assert message in err and "error:" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("name, script", [("cifar10_vit_deterministic", "deterministic"),
                                          ("cifar10_vit_batchensemble", "batchensemble"),
                                          ("cifar10_vit_b16_finetune", "deterministic")])
def test_the_shipped_configs_are_valid_for_their_scripts(name, script):
    errors = experiment.config_errors(config_lib.load_config_file(REPO / CONFIGS / f"{name}.py"), script_method(script))
    # The fine-tuning recipe needs the user's pretrained checkpoint, and says so.
    assert errors == (["model_init: pretrained checkpoint /path/to/ViT-B_16.npz does not exist"]
                      if name.endswith("finetune") else [])
