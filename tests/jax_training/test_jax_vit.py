"""The Flax ViT: big_vision's parameter names and shapes, BatchEnsemble members."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_helpers import SMALL_VIT as SMALL, big_vision_layout
from uncertainty_baselines.jax_training import checkpoints, vit


@pytest.mark.parametrize("pool_type", ["tok", "gap"])
def test_parameters_are_named_and_shaped_as_big_vision_writes_them(pool_type):
    model = vit.ViT(num_classes=10, pool_type=pool_type, **SMALL)
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((2, 32, 32, 3)))["params"]
    zeros = jax.tree_util.tree_map(lambda s: np.zeros(s.shape), shapes)
    ours = {k: v.shape for k, v in checkpoints.flatten(zeros).items()}
    expected = big_vision_layout(depth=2, width=16, mlp_dim=32, num_heads=2, patch=8, grid=4, num_classes=10,
                                 pool_type=pool_type)
    assert ours == expected


def test_batchensemble_keeps_the_shared_names_and_adds_per_member_fast_weights_and_biases(small_be_vit):
    params = checkpoints.flatten(small_be_vit[1])
    dense = "Transformer/encoderblock_1/MlpBlock_0/Dense_0"
    assert params[f"{dense}/kernel"].shape == (16, 32)
    assert params[f"{dense}/fast_weight_alpha"].shape == (3, 16)
    assert params[f"{dense}/fast_weight_gamma"].shape == (3, 32)
    assert params[f"{dense}/bias"].shape == (3, 32)
    assert params["head/bias"].shape == (3, 10)
    # Layer 0 is not a BatchEnsemble layer: plain dense weights only.
    assert "Transformer/encoderblock_0/MlpBlock_0/Dense_0/fast_weight_alpha" not in params
    # Random-sign init with P(+1) = 0.5: only +-1, both signs present.
    assert set(np.unique(params[f"{dense}/fast_weight_alpha"])) == {-1.0, 1.0}


def test_batchensemble_members_differ_and_each_sees_only_its_example(small_be_vit):
    model, params = small_be_vit
    kernel = jax.random.normal(jax.random.key(3), (16, 10))  # Not the zero init.
    params = {**params, "head": {**params["head"], "kernel": kernel}}
    x = jax.random.normal(jax.random.key(1), (5, 32, 32, 3))
    logits = jax.jit(model.apply)({"params": params}, x)
    assert logits.shape == (5, 3, 10)
    assert not np.allclose(logits[:, 0], logits[:, 1])  # Members differ (fast weights).
    # Eval mode: example 2's logits do not depend on example 3's pixels (no cross-talk
    # through the tiling), for every member.
    jac = jax.jit(jax.jacobian(lambda img: model.apply({"params": params}, img)[2, :, 3].sum()))(x)
    assert np.abs(jac[3]).max() == 0.0 and np.abs(jac[2]).max() > 0.0


def test_initial_loss_is_about_log_k(small_vit):
    model, params = small_vit
    logits = jax.jit(model.apply)({"params": params}, jax.random.normal(jax.random.key(2), (8, 32, 32, 3)))
    loss = -jax.nn.log_softmax(logits)[:, 3].mean()
    assert abs(float(loss) - np.log(10)) < 1e-5  # The zero-initialised head gives uniform logits.


def test_sign_initializer_follows_the_reference():
    signs = vit.sign_initializer(0.75)(jax.random.key(0), (20000,))
    assert set(np.unique(signs)) == {-1.0, 1.0} and abs(float((signs > 0).mean()) - 0.75) < 0.02
    gauss = vit.sign_initializer(-0.5)(jax.random.key(0), (20000,))
    assert abs(float(gauss.mean()) - 1.0) < 0.02 and abs(float(gauss.std()) - 0.5) < 0.02


def test_model_errors_name_the_bad_fields():
    errors = vit.model_errors({"widht": 16, "width": 18, "num_heads": 4, "patch_size": (5, 5), "be_layers": (7,),
                               "depth": 2, "ens_size": 2, "random_sign_init": 1.5}, image_shape=(32, 32, 3))
    text = " | ".join(errors)
    assert "model.widht: unknown ViT field" in text
    assert "model.width 18 must be a positive multiple of model.num_heads 4" in text
    assert "patch_size (5, 5) does not tile the (32, 32) images" in text
    assert "model.be_layers [7] are not encoder layers 0..1" in text
    assert "model.random_sign_init must be non-zero and at most 1 (P(+1)), got 1.5" in text
