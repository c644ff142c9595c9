"""Schedules, per-parameter learning-rate multipliers, the member loss, and the loop's guards."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from uncertainty_baselines.jax_training import loop, method, optim


def test_schedule_warms_up_linearly_then_decays_to_zero():
    lr = optim.schedule({"base": 0.1, "warmup_steps": 10, "decay_type": "cosine"}, total_steps=110)
    assert float(lr(0)) == pytest.approx(0.01) and float(lr(9)) == pytest.approx(0.1)
    assert float(lr(60)) == pytest.approx(0.05, rel=1e-5)  # Half-way through the cosine.
    assert float(lr(110)) == pytest.approx(0.0, abs=1e-9)
    linear = optim.schedule({"base": 0.1, "warmup_steps": 0, "decay_type": "linear"}, total_steps=100)
    assert float(linear(50)) == pytest.approx(0.05)
    constant = optim.schedule({"base": 0.1, "warmup_steps": 0, "decay_type": "constant"}, total_steps=100)
    assert float(constant(99)) == pytest.approx(0.1)


def test_fast_weights_move_at_their_multiplier_of_the_learning_rate():
    params = {"Dense_0": {"kernel": jnp.ones((2, 2)), "fast_weight_alpha": jnp.ones((3, 2))}}
    grads = jax.tree_util.tree_map(lambda p: jnp.full_like(p, 0.5), params)
    config = {"optimizer": "adam", "lr": {"base": 1e-2, "warmup_steps": 0, "decay_type": "constant"}}
    multipliers = method.multipliers_by_name(params, 0.25)
    assert multipliers == {"Dense_0": {"kernel": 1.0, "fast_weight_alpha": 0.25}}
    tx, _ = optim.make_optimizer(config, 100, multipliers)
    updates, _ = tx.update(grads, tx.init(params), params)
    # Adam's first step is -lr * sign(g) whatever |g|: a gradient scale would be a no-op,
    # the update scale is the multiplier.
    np.testing.assert_allclose(updates["Dense_0"]["kernel"], -1e-2, rtol=1e-4)
    np.testing.assert_allclose(updates["Dense_0"]["fast_weight_alpha"], -0.25e-2, rtol=1e-4)


def test_member_loss_is_the_mean_of_the_members_cross_entropies():
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(4, 3, 5)).astype(np.float32), np.array([0, 4, 2, 2])
    expected = np.mean([optax.softmax_cross_entropy_with_integer_labels(logits[:, m], labels) for m in range(3)],
                       axis=0)
    np.testing.assert_allclose(loop.member_cross_entropy(jnp.asarray(logits), jnp.asarray(labels)), expected, rtol=1e-5)
    probs = loop.mean_probs(jnp.asarray(logits))
    np.testing.assert_allclose(probs, jax.nn.softmax(logits, -1).mean(1), rtol=1e-6)


def test_a_non_finite_loss_stops_training():
    state = loop.TrainState(None, None, None, {"loss_sum": jnp.float32(jnp.nan), "correct": jnp.float32(0),
                                               "examples": jnp.float32(8)})
    with pytest.raises(loop.NonFiniteError, match="non-finite training loss"):
        loop.check_finite_sums(state, "epoch 3")


def test_asking_for_more_devices_than_visible_is_an_error():
    with pytest.raises(ValueError, match="xla_force_host_platform_device_count"):
        loop.make_mesh(jax.device_count() + 1)
