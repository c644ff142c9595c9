"""Pytrees <-> the suite's checkpoint format: stable names, exact round trip, checked restore."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from uncertainty_baselines.jax_training import checkpoints


def tree():
    params = {"Transformer": {"encoderblock_0": {"kernel": jnp.arange(6.0).reshape(2, 3)}},
              "head": {"bias": jnp.ones(3)}}
    return params, optax.adam(1e-3).init(params)


def test_leaf_names_are_key_paths_including_optax_state_fields():
    params, opt_state = tree()
    assert set(checkpoints.flatten(params)) == {"Transformer/encoderblock_0/kernel", "head/bias"}
    names = set(checkpoints.flatten(opt_state))
    assert {"0/count", "0/mu/head/bias", "0/nu/Transformer/encoderblock_0/kernel"} <= names


def test_save_restore_round_trip_is_exact_and_verified(tmp_path):
    params, opt_state = tree()
    params = jax.tree_util.tree_map(lambda x: x + 0.1234567, params)
    checkpoints.save(tmp_path, 7, {"params": params, "opt_state": opt_state}, {"epoch": 1})
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    trees, step, state = checkpoints.restore_latest(tmp_path, {"params": zeros, "opt_state": opt_state})
    assert step == 7 and state == {"epoch": 1}
    for a, b in zip(jax.tree_util.tree_leaves(trees["params"]), jax.tree_util.tree_leaves(params)):
        np.testing.assert_array_equal(a, b)
    assert (tmp_path / "ckpt-000000007" / "params.npz").is_file()


def test_restore_into_another_model_names_what_differs(tmp_path):
    params, opt_state = tree()
    checkpoints.save(tmp_path, 1, {"params": params}, {})
    wider = {**params, "head": {"bias": jnp.ones(4)}}
    with pytest.raises(ValueError, match=r"head/bias: checkpoint \(3,\), model \(4,\)"):
        checkpoints.restore_latest(tmp_path, {"params": wider})
    renamed = {"Transformer": params["Transformer"], "head2": params["head"]}
    with pytest.raises(ValueError, match=r"missing \['head2/bias'\], unexpected \['head/bias'\]"):
        checkpoints.restore_latest(tmp_path, {"params": renamed})
