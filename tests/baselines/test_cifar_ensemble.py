"""baselines/cifar/ensemble.py end to end: two tiny deterministic runs evaluated as one
ensemble (member metrics equal each run's own; the corrupted sets named by --corruption_types
scored without a training interval), and member directories that cannot form
an ensemble refused with their name, before anything is written."""
import json
import shutil

import pytest

import cifar_e2e
from uncertainty_baselines.runs import checkpoint

MEMBER = ["--dataset=fashion_mnist", "--depth=10", "--batch_size=32", "--train_epochs=1",
          "--steps_per_loop=4", "--log_interval_s=0"]


@pytest.fixture(scope="module")
def members(cifar_data_dir, tmp_path_factory):
    """Two WRN-10-1 runs (seeds 0, 1) and a WRN-10-2 run: the third does not fit an ensemble."""
    root = tmp_path_factory.mktemp("members")
    for name, extra in (("seed0", ["--seed=0", "--width=1"]), ("seed1", ["--seed=1", "--width=1"]),
                        ("wide", ["--seed=2", "--width=2"])):
        cifar_e2e.run("deterministic", [*MEMBER, *extra], cifar_data_dir, root / name)
    return root


def ensemble(run_dirs, data_dir, output_dir, *extra, expect_ok=True):
    return cifar_e2e.run("ensemble", ["--dataset=fashion_mnist", f"--run_dirs={','.join(map(str, run_dirs))}",
                                      "--ensemble_size=2", "--eval_on_ood", "--ood_dataset=mnist", *extra],
                         data_dir, output_dir, expect_ok)


def test_ensemble_of_two_runs(members, cifar_data_dir, tmp_path):
    ensemble([members / "seed0", members / "seed1"], cifar_data_dir, tmp_path / "ens",
             "--corruption_types=gaussian_noise", "--severities=1")
    record = json.loads((tmp_path / "ens" / "run.json").read_text())
    metrics = record["metrics"]
    assert record["method"] == "ensemble" and record["members"] == [str(members / "seed0"), str(members / "seed1")]
    for i in (0, 1):
        own = json.loads((members / f"seed{i}" / "run.json").read_text())["metrics"]
        for key in ("accuracy", "negative_log_likelihood", "ece"):
            assert metrics[f"test/{key}_member_{i}"] == pytest.approx(own[f"test/{key}"], abs=1e-6), (i, key)
    assert metrics["test/gibbs_negative_log_likelihood"] >= metrics["test/ensemble_negative_log_likelihood"]
    assert metrics["test/negative_log_likelihood"] == pytest.approx(metrics["test/ensemble_negative_log_likelihood"])
    for kind in ("", "_entropy", "_mutual_information", "_dempster_shafer"):
        assert f"ood/mnist{kind}_auroc" in metrics, kind
    assert {"test/accuracy_gaussian_noise_1", "test/accuracy_mean_corrupted"} <= set(metrics)


def test_members_that_do_not_fit_are_refused_by_name(members, cifar_data_dir, tmp_path):
    code, out = ensemble([members / "seed0", members / "wide"], cifar_data_dir, tmp_path / "a", expect_ok=False)
    assert code != 0 and f"ensemble member {members / 'wide'} has model" in out
    broken = tmp_path / "broken"
    shutil.copytree(members / "seed1", broken)
    weights = checkpoint.list_checkpoints(broken / "checkpoints")[-1] / "model.npz"
    weights.write_bytes(weights.read_bytes()[:-100])  # Truncated.
    code, out = ensemble([members / "seed0", broken], cifar_data_dir, tmp_path / "b", expect_ok=False)
    assert code != 0 and f"ensemble member {broken}" in out and "model.npz" in out
    code, out = ensemble([members / "seed0"], cifar_data_dir, tmp_path / "c", expect_ok=False)
    assert code != 0 and "fewer than --ensemble_size=2" in out
    code, out = ensemble([members / "seed0", members / "seed1"], cifar_data_dir, tmp_path / "d",
                         "--ensemble_size=0", expect_ok=False)
    assert code != 0 and "--ensemble_size must be >= 1" in out
    assert not any((tmp_path / name).exists() for name in "abcd")  # Nothing written.


def test_missing_members_are_trained_as_deterministic_py_would(members, cifar_data_dir, tmp_path):
    """--train_missing_members trains the directory without a finished run with seed --seed +
    its position: the same run deterministic.py made with that seed; then the ensemble. The
    corrupted sets named without --corruptions_interval are the ensemble's to score alone."""
    missing = tmp_path / "seed1"
    ensemble([members / "seed0", missing], cifar_data_dir, tmp_path / "ens", *MEMBER, "--width=1", "--seed=0",
             "--train_missing_members", "--corruption_types=gaussian_noise", "--severities=1")
    trained = json.loads((missing / "run.json").read_text())
    assert trained["flags"]["corruption_types"] == [] and "test/accuracy_gaussian_noise_1" not in trained["metrics"]
    made = json.loads((members / "seed1" / "run.json").read_text())
    assert trained["method"] == "deterministic" and trained["seed"] == 1
    assert trained["model"] == made["model"]
    for key in ("test/accuracy", "test/negative_log_likelihood", "test/ece"):
        assert trained["metrics"][key] == pytest.approx(made["metrics"][key], abs=1e-6), key
    metrics = json.loads((tmp_path / "ens" / "run.json").read_text())["metrics"]
    assert metrics["test/accuracy_member_1"] == pytest.approx(made["metrics"]["test/accuracy"], abs=1e-6)
    assert "test/accuracy_gaussian_noise_1" in metrics


def test_a_missing_member_is_named_without_the_training_flag(members, cifar_data_dir, tmp_path):
    code, out = ensemble([members / "seed0", tmp_path / "absent"], cifar_data_dir, tmp_path / "ens", expect_ok=False)
    assert code != 0 and f"ensemble member {tmp_path / 'absent'}" in out and "finished run" in out
    assert not (tmp_path / "ens").exists() and not (tmp_path / "absent").exists()


def test_members_that_cannot_be_trained_alike_are_refused_first(members, cifar_data_dir, tmp_path):
    """Before any training: a finished member made with other training flags, a missing
    member whose seed (--seed + position) repeats a finished one's, --eval_only, a finished
    member's corrupt checkpoint."""
    new = tmp_path / "new"
    common = [*MEMBER, "--width=1", "--train_missing_members"]
    code, out = ensemble([members / "seed0", new], cifar_data_dir, tmp_path / "a", *common, "--seed=0",
                         "--train_epochs=2", expect_ok=False)
    assert code != 0 and f"ensemble member {members / 'seed0'} was trained with other flags" in out
    assert "train_epochs: 1 -> 2" in out
    code, out = ensemble([members / "seed1", new], cifar_data_dir, tmp_path / "b", *common, "--seed=0",
                         expect_ok=False)
    assert code != 0 and f"ensemble members {members / 'seed1'} and {new} both have seed 1" in out
    code, out = ensemble([members / "seed0", new], cifar_data_dir, tmp_path / "c", *common, "--seed=0",
                         "--eval_only", f"--checkpoint_dir={members / 'seed1'}", expect_ok=False)
    assert code != 0 and "cannot be combined with --eval_only" in out
    broken = tmp_path / "broken"  # A finished member's truncated checkpoint is found before training.
    shutil.copytree(members / "seed0", broken)
    weights = checkpoint.list_checkpoints(broken / "checkpoints")[-1] / "model.npz"
    weights.write_bytes(weights.read_bytes()[:-100])
    code, out = ensemble([broken, new], cifar_data_dir, tmp_path / "d", *common, "--seed=0", expect_ok=False)
    assert code != 0 and f"ensemble member {broken}" in out and "model.npz" in out
    assert not new.exists() and not any((tmp_path / name).exists() for name in "abcd")
