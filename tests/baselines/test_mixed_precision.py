"""--mixed_precision on a tiny CIFAR-size run (baselines/cifar/deterministic.py, WRN-10-1 on the
prepared Fashion-MNIST subset): it runs under mixed_bfloat16 on this CPU, trains (the loss
falls), and ends close to the float32 run's accuracy."""
import json

import cifar_e2e
from uncertainty_baselines.runs import summaries

ARGS = ["--dataset=fashion_mnist", "--depth=10", "--width=1", "--batch_size=32", "--train_epochs=3",
        "--steps_per_loop=4", "--log_interval_s=0", "--seed=7", "--initializer=glorot_uniform"]


def test_bfloat16_trains_and_ends_close_to_float32(cifar_data_dir, tmp_path):
    _, out = cifar_e2e.run("deterministic", [*ARGS, "--mixed_precision"], cifar_data_dir, tmp_path / "bf16")
    assert "dtype policy mixed_bfloat16" in out
    cifar_e2e.run("deterministic", ARGS, cifar_data_dir, tmp_path / "fp32")
    bf16 = json.loads((tmp_path / "bf16" / "run.json").read_text())
    fp32 = json.loads((tmp_path / "fp32" / "run.json").read_text())
    assert bf16["flags"]["mixed_precision"] is True and fp32["flags"]["mixed_precision"] is False
    losses = [r["train/loss"] for r in summaries.read_metrics(tmp_path / "bf16")]
    assert losses[-1] < losses[0]
    assert bf16["metrics"]["test/accuracy"] > 0.3  # 10 classes: well above chance after 24 steps.
    assert abs(bf16["metrics"]["test/accuracy"] - fp32["metrics"]["test/accuracy"]) <= 0.08
    assert abs(bf16["metrics"]["test/negative_log_likelihood"] - fp32["metrics"]["test/negative_log_likelihood"]) \
        <= 0.25 * fp32["metrics"]["test/negative_log_likelihood"]
