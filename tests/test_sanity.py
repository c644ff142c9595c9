"""The sanity harness: registered models pass it, deliberately broken models fail it."""
import math

import keras
import numpy as np
import pytest

import uncertainty_baselines as ub
from uncertainty_baselines import sanity

from sanity_models import IgnoreInput, ScaleWithFrozenOrUnusedWeight, SubtractBatchMean, mlp_with

pytestmark = pytest.mark.slow  # Trains many tiny models: starts early (tests/conftest.py).


def random_batch(shape, num_classes, n=16, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, *shape)).astype(np.float32),
            rng.integers(num_classes, size=n))


def by_name(report):
    return {c.name: c for c in report.checks}


def test_wide_resnet_passes_every_check():
    x, y = random_batch((8, 8, 3), 10)
    report = sanity.run_sanity(lambda: ub.models.get(
        "wide_resnet", input_shape=(8, 8, 3), depth=10, width_multiplier=1, num_classes=10),
        x, y, steps=100)
    assert [c.name for c in report.checks] == list(sanity.CHECKS)
    assert report.passed, report.table()
    checks = by_name(report)
    assert checks["overfit"].measured < 0.05
    assert abs(checks["initial_loss"].measured - math.log(10)) < 0.3 * math.log(10)


def test_mlp_passes_every_check():
    x, y = random_batch((8,), 3)
    report = sanity.run_sanity(
        lambda: ub.models.get("mlp", input_dim=8, num_outputs=3, seed=0), x, y, steps=300)
    assert report.passed, report.table()


def test_resnet50_passes_the_cheap_checks_on_a_small_input():
    x, y = random_batch((32, 32, 3), 10, n=4)
    report = sanity.run_sanity(
        lambda: ub.models.get("resnet50", input_shape=(32, 32, 3), num_classes=10), x, y,
        checks=("initial_loss", "batch_independence"))
    assert [c.name for c in report.checks] == ["initial_loss", "batch_independence"]
    assert report.passed, report.table()


# Deliberately broken models: each must fail the check aimed at its defect. Every builder
# takes a `broken` switch, and the unbroken control must pass the same check, so a failure
# is due to the defect and not to the harness failing everything.

def test_batch_mixing_model_fails_batch_independence():
    x, y = random_batch((8,), 3)
    checks = ("batch_independence",)
    broken = sanity.run_sanity(mlp_with(lambda: SubtractBatchMean(True)), x, y, checks=checks)
    control = sanity.run_sanity(mlp_with(lambda: SubtractBatchMean(False)), x, y, checks=checks)
    assert control.passed, control.table()
    assert not broken.passed and broken.checks[0].measured > 0


@pytest.mark.filterwarnings("ignore:Gradients do not exist")
@pytest.mark.parametrize("defect", ["unused", "stop_gradient"])
def test_variable_without_gradient_fails_variables_change(defect):
    x, y = random_batch((8,), 3)
    checks = ("trainable_variables_change",)
    broken = sanity.run_sanity(
        mlp_with(lambda: ScaleWithFrozenOrUnusedWeight(defect, name="frozen_scale")), x, y, checks=checks)
    control = sanity.run_sanity(
        mlp_with(lambda: ScaleWithFrozenOrUnusedWeight(None)), x, y, checks=checks)
    assert control.passed, control.table()
    check = broken.checks[0]
    assert not check.passed and check.measured == 1.0
    assert "unchanged: frozen_scale/scale" in check.detail
    assert "4/5 trainable changed" in check.detail


def test_model_ignoring_its_input_fails_overfit_zero_input_and_independence():
    x, y = random_batch((8,), 3)
    report = by_name(sanity.run_sanity(mlp_with(lambda: IgnoreInput(True)), x, y, steps=300))
    control = sanity.run_sanity(mlp_with(lambda: IgnoreInput(False)), x, y, steps=300)
    assert control.passed, control.table()
    # Constant logits can do no better than the label frequencies of the batch.
    counts = np.bincount(y, minlength=3) / len(y)
    entropy = -sum(p * math.log(p) for p in counts if p > 0)
    assert report["overfit"].measured == pytest.approx(entropy, abs=0.02)
    assert not report["overfit"].passed
    assert not report["zero_input"].passed and report["zero_input"].measured == 0.0
    assert not report["batch_independence"].passed  # zero gradient on its own input
    assert report["determinism"].passed and report["initial_loss"].passed


def test_unseeded_model_fails_determinism():
    def unseeded():
        inputs = keras.Input((8,))
        return keras.Model(inputs, keras.layers.Dense(3)(inputs))  # glorot, no seed
    x, y = random_batch((8,), 3)
    report = sanity.run_sanity(unseeded, x, y, checks=("determinism",))
    assert not report.passed and report.checks[0].measured > 0


def test_overconfident_initialisation_fails_initial_loss():
    def build(scale):
        def builder():
            inputs = keras.Input((8,))
            logits = keras.layers.Dense(
                3, kernel_initializer=keras.initializers.RandomNormal(stddev=scale, seed=0))(
                    inputs)
            return keras.Model(inputs, logits)
        return builder
    x, y = random_batch((8,), 3)
    broken = sanity.run_sanity(build(10.0), x, y, checks=("initial_loss",))
    control = sanity.run_sanity(build(0.01), x, y, checks=("initial_loss",))
    assert control.passed and control.checks[0].measured == pytest.approx(math.log(3), abs=0.05)
    assert not broken.passed and broken.checks[0].measured > 2 * math.log(3)


def test_table_shows_every_check_with_its_figures():
    x, y = random_batch((8,), 3)
    report = sanity.run_sanity(mlp_with(lambda: SubtractBatchMean(True)), x, y,
                               checks=("initial_loss", "batch_independence"))
    table = report.table()
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["check", "result", "measured", "threshold"]
    assert lines[1].startswith("initial_loss") and "PASS" in lines[1]
    assert lines[2].startswith("batch_independence") and "FAIL" in lines[2]
    assert f"{report.checks[0].measured:.4g}" in lines[1]
    assert lines[-1] == "backend tensorflow: FAILED"


@pytest.mark.parametrize("kwargs,message", [
    ({"checks": ("overfit", "speed")}, r"unknown check\(s\) \['speed'\]; valid checks"),
    ({"y": np.array([0, 1, 5, 2])}, r"labels must lie in \[0, 3\)"),
    ({"y": np.array([0, 1])}, "same number"),
    ({"steps": 1, "determinism_steps": 2}, "steps >= determinism_steps"),
])
def test_bad_input_raises_clear_errors(kwargs, message):
    x, y = random_batch((8,), 3, n=4)
    args = {"x": x, "y": y, **kwargs}
    with pytest.raises(ValueError, match=message):
        sanity.run_sanity(mlp_with(lambda: SubtractBatchMean(False)), **args)


def test_cli_exit_status_follows_the_checks(capsys):
    common = ["--model", "mlp", "--input_shape", "8", "--num_classes", "3", "--batch", "16"]
    assert sanity.main(common + ["--steps", "300"]) == 0
    assert "ALL PASSED" in capsys.readouterr().out
    # Two Adam steps cannot memorise the batch: the overfit check fails, so does the command.
    assert sanity.main(common + ["--steps", "2", "--checks", "overfit"]) == 1
    out = capsys.readouterr().out
    assert "overfit" in out and "FAIL" in out


def test_member_view_is_that_member_of_the_model():
    x = random_batch((8, 8, 3), 10, n=4)[0]
    batchensemble = ub.models.get("wide_resnet_batchensemble", input_shape=(8, 8, 3), depth=10, width_multiplier=1,
                                  num_classes=10, ensemble_size=2)
    mimo = ub.models.get("wide_resnet_mimo", input_shape=(8, 8, 3), depth=10, width_multiplier=1, num_classes=10,
                         ensemble_size=2)
    for model, copies, stacked in ((batchensemble, 1, x), (mimo, 2, np.concatenate([x, x], axis=-1))):
        full = keras.ops.convert_to_numpy(model(stacked, training=False))
        for member in (0, 1):
            view = keras.ops.convert_to_numpy(sanity.member_view(model, member, copies)(x, training=False))
            np.testing.assert_allclose(view, full[:, member], rtol=1e-5, atol=1e-5)
        assert not np.allclose(full[:, 0], full[:, 1])


def test_cli_checks_each_member_of_a_member_axis_model(capsys):
    common = ["--model", "wide_resnet_mimo", "--input_shape", "8,8,3", "--depth", "10", "--width", "1",
              "--kwarg", "ensemble_size=2", "--batch", "16", "--checks", "initial_loss,batch_independence"]
    assert sanity.main(common) == 0
    out = capsys.readouterr().out
    assert "member 0 of 2" in out and "member 1 of 2" in out and out.count("ALL PASSED") == 2
    assert sanity.main([*common, "--member", "1"]) == 0
    assert "member 0 of 2" not in capsys.readouterr().out
    assert sanity.main([*common, "--member", "2"]) == 2
    assert "--member=2: wide_resnet_mimo has 2 members" in capsys.readouterr().err
    assert sanity.main(["--model", "mlp", "--input_shape", "8", "--member", "0", "--checks", "initial_loss"]) == 2
    assert "mlp has no members" in capsys.readouterr().err


def test_cli_maps_flags_to_constructor_arguments():
    builder = ub.models.get_builder("wide_resnet")
    kwargs = sanity.builder_kwargs(builder, (8, 8, 3), 4, 1, {"depth": 10})
    assert kwargs == {"input_shape": (8, 8, 3), "num_classes": 4, "seed": 1, "depth": 10}
    mlp_kwargs = sanity.builder_kwargs(ub.models.get_builder("mlp"), (5,), 2, 0, {})
    assert mlp_kwargs == {"input_dim": 5, "num_outputs": 2, "seed": 0}
    with pytest.raises(ValueError, match=r"no argument\(s\) \['dept'\]; accepted"):
        sanity.builder_kwargs(builder, (8, 8, 3), 4, 1, {"dept": 10})
    with pytest.raises(ValueError, match="one dimension"):
        sanity.builder_kwargs(ub.models.get_builder("mlp"), (8, 8), 2, 0, {})


@pytest.mark.parametrize("argv,message", [
    (["--model", "wrn"], "invalid choice"),
    (["--model", "mlp", "--input_shape", "8x8"], "comma-separated integers"),
    (["--model", "mlp", "--checks", "overfit,speed"], "unknown check"),
    (["--model", "mlp", "--kwarg", "depth"], "KEY=VALUE"),
])
def test_cli_rejects_bad_flags(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        sanity.main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_mc_dropout_wrn_passes_every_check():
    # Its masks are drawn in eval mode too: zero_input compares two sampled passes (a margin
    # of about 2.5 nats here, against the 1.15 it needs).
    x, y = random_batch((8, 8, 3), 10)
    report = sanity.run_sanity(lambda: ub.models.get(
        "wide_resnet_mc_dropout", input_shape=(8, 8, 3), depth=10, width_multiplier=1, num_classes=10,
        dropout_rate=0.1), x, y, steps=100)
    assert report.passed, report.table()


@pytest.mark.parametrize("member", [0, 1])
def test_each_mimo_member_passes_every_check(member):
    x, y = random_batch((8, 8, 3), 10)
    build = lambda: sanity.member_view(ub.models.get("wide_resnet_mimo", input_shape=(8, 8, 3), depth=10,  # noqa: E731
                                              width_multiplier=1, num_classes=10, ensemble_size=2), member, copies=2)
    report = sanity.run_sanity(build, x, y, steps=100)
    assert report.passed, report.table()


@pytest.mark.parametrize("member", [0, 1])
def test_each_batchensemble_member_passes_every_check(member):
    x, y = random_batch((8, 8, 3), 10)
    build = lambda: sanity.member_view(ub.models.get("wide_resnet_batchensemble", input_shape=(8, 8, 3), depth=10,  # noqa: E731
                                              width_multiplier=1, num_classes=10, ensemble_size=2), member)
    report = sanity.run_sanity(build, x, y, steps=100)
    assert report.passed, report.table()


def test_a_rank1_member_passes_every_check_with_its_kl_reported():
    x, y = random_batch((8, 8, 3), 10)
    build = lambda: sanity.member_view(ub.models.get("wide_resnet_rank1", input_shape=(8, 8, 3), depth=10,  # noqa: E731
                                              width_multiplier=1, num_classes=10, ensemble_size=2), 1)
    report = sanity.run_sanity(build, x, y, steps=100, kl=ub.layers.rank1_kl)
    assert report.passed, report.table()
    assert "KL" in by_name(report)["initial_loss"].detail  # Judged on one sampled pass's NLL.


def test_variational_wrn_passes_every_check_with_its_kl_reported():
    def build():
        # Both builds get the same layer names: TF graph mode's rewrites depend on node names, so
        # twins named apart sum some gradients in another order and differ by rounding.
        keras.backend.clear_session()
        return ub.models.get("wide_resnet_variational", input_shape=(8, 8, 3), depth=10, width_multiplier=1,
                             num_classes=10)

    x, y = random_batch((8, 8, 3), 10)
    report = sanity.run_sanity(build, x, y, steps=100, kl=lambda model: ub.layers.flipout_kl(model, tied_mean=True))
    assert report.passed, report.table()


def test_initial_loss_accounts_for_the_kl_term():
    x, y = random_batch((8,), 3)
    build = lambda: ub.models.get("mlp", input_dim=8, num_outputs=3, seed=0)  # noqa: E731
    good = by_name(sanity.run_sanity(build, x, y, checks=("initial_loss",), kl=lambda model: 5.0))["initial_loss"]
    assert good.passed and "KL 5 nats" in good.detail and "KL finite and >= 0" in good.threshold
    for bad in (float("nan"), float("inf"), -1.0):  # The same NLL, a broken KL: the check fails.
        check = by_name(sanity.run_sanity(build, x, y, checks=("initial_loss",), kl=lambda model: bad))["initial_loss"]
        assert not check.passed and check.measured == good.measured, bad


def test_sngp_wrn_passes_every_check():
    # Eval mode gives the mean-field logits: the GP variance of each example is its own.
    x, y = random_batch((8, 8, 3), 10)
    report = sanity.run_sanity(lambda: ub.models.get(
        "wide_resnet_sngp", input_shape=(8, 8, 3), depth=10, width_multiplier=1, num_classes=10,
        num_inducing=64), x, y, steps=100)
    assert report.passed, report.table()


def test_heteroscedastic_wrn_passes_every_check():
    # The seeded MC noise is drawn per example; the harness restores its RNG state between
    # eval-mode losses, so even zero_input compares the same draws.
    x, y = random_batch((8, 8, 3), 10)
    report = sanity.run_sanity(lambda: ub.models.get(
        "wide_resnet_heteroscedastic", input_shape=(8, 8, 3), depth=10, width_multiplier=1, num_classes=10,
        num_mc_samples=100), x, y, steps=100)
    assert report.passed, report.table()
