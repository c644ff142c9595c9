"""baselines/cifar/heteroscedastic.py end to end: the Monte-Carlo head's log-probabilities
evaluated in one pass, the reloaded model, exact resume from a checkpoint (the noise's RNG
state included), flags refused at validation."""
import json

import numpy as np
import pytest

import cifar_e2e
import uncertainty_baselines as ub
from cifar_e2e import NUM_TEST, without_timing

COMMON = ["--dataset=fashion_mnist", "--depth=10", "--width=1", "--batch_size=32", "--train_epochs=2",
          "--num_mc_samples=32", "--steps_per_loop=2", "--log_interval_s=0", "--seed=6"]


def run(args, data_dir, output_dir, expect_ok=True):
    return cifar_e2e.run("heteroscedastic", [*COMMON, *args], data_dir, output_dir, expect_ok)


@pytest.fixture(scope="module")
def heteroscedastic_run(cifar_data_dir, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("runs") / "heteroscedastic"
    run([], cifar_data_dir, out_dir)
    return out_dir


def test_metrics_reported_and_the_reloaded_model_predicts_like_the_run(heteroscedastic_run, cifar_data_dir):
    record = json.loads((heteroscedastic_run / "run.json").read_text())
    metrics = record["metrics"]
    assert record["method"] == "heteroscedastic" and record["model"]["name"] == "wide_resnet_heteroscedastic"
    assert record["model"]["kwargs"]["num_factors"] == 6 and record["model"]["kwargs"]["temperature"] == 1.3
    assert metrics["test/num_examples"] == NUM_TEST and 0 < metrics["test/negative_log_likelihood"] < 10
    test = ub.datasets.get("fashion_mnist", "test", data_dir=str(cifar_data_dir)).load(batch_size=NUM_TEST)
    batch = next(iter(test))
    first, second = (np.asarray(ub.models.load(heteroscedastic_run)(batch["features"], training=False), np.float64)
                     for _ in range(2))
    np.testing.assert_array_equal(first, second)  # The noise's RNG state is reloaded with the weights.
    np.testing.assert_allclose(np.logaddexp.reduce(first, axis=-1), 0.0, atol=1e-5)
    # Other noise draws than the run's final evaluation (its RNG state has moved on): the
    # NLL nearly equal. (The tiny run is near chance, so its accuracy would flip on near-ties.)
    nll = -np.mean(first[np.arange(NUM_TEST), batch["labels"].numpy()])
    assert nll == pytest.approx(metrics["test/negative_log_likelihood"], rel=0.02)


def test_resume_from_the_first_checkpoint_is_exact(heteroscedastic_run, cifar_data_dir, tmp_path):
    got = cifar_e2e.resume_from_first_checkpoint("heteroscedastic", COMMON, cifar_data_dir, heteroscedastic_run, tmp_path / "resumed")
    ref = json.loads((heteroscedastic_run / "run.json").read_text())["metrics"]
    assert without_timing(got) == without_timing(ref)  # The MC noise included: exactly equal.


def test_bad_method_flags_refused_all_at_once(cifar_data_dir, tmp_path):
    code, out = run(["--temperature=0", "--num_mc_samples=0", "--num_factors=-1"], cifar_data_dir,
                    tmp_path / "bad", expect_ok=False)
    assert code != 0 and not (tmp_path / "bad").exists()
    for message in ("--temperature must be > 0, got 0.0", "--num_mc_samples must be >= 1, got 0",
                    "--num_factors must be >= 0 (0: diagonal noise only), got -1"):
        assert message in out, message
