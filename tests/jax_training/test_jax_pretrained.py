"""Loading big_vision .npz ViT weights (checkpoints generated here in big_vision's layout)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_helpers import big_vision_layout, write_big_vision_npz
from uncertainty_baselines.jax_training import checkpoints, pretrained


def layout(**kwargs):
    return big_vision_layout(**{**dict(depth=2, width=16, mlp_dim=32, num_heads=2, patch=8, grid=4,
                                       num_classes=1000), **kwargs})


def test_every_parameter_but_the_head_comes_from_the_checkpoint(tmp_path, small_vit):
    arrays = write_big_vision_npz(tmp_path / "vit.npz", layout())  # An upstream 1000-class model.
    model, params = small_vit
    loaded, report = pretrained.load_pretrained(params, tmp_path / "vit.npz")
    flat, init_flat = checkpoints.flatten(loaded), checkpoints.flatten(params)
    for name, value in flat.items():
        if name.startswith("head/"):
            np.testing.assert_array_equal(value, init_flat[name])  # New task: head kept at its init.
        else:
            np.testing.assert_array_equal(value, arrays[name])
    assert report.kept_init == ["head/bias", "head/kernel"] and not report.unused
    # The loaded weights are the ones the model computes with: another patch embedding in
    # the checkpoint gives other features.
    x = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
    features = jax.jit(lambda p: model.apply({"params": {**p, "head": {"kernel": jnp.eye(16, 10),
                                                                       "bias": jnp.zeros(10)}}}, x))
    changed = {**arrays, "embedding/kernel": -arrays["embedding/kernel"]}
    np.savez(tmp_path / "vit2.npz", **changed)
    loaded2, _ = pretrained.load_pretrained(params, tmp_path / "vit2.npz")
    assert not np.allclose(features(loaded), features(loaded2))


def test_optimizer_checkpoints_old_names_and_bfloat16_are_read(tmp_path):
    """`params/` prefix (big_vision with optax state), vision_transformer's pre-linen names,
    the old position-embedding place with the class token's position folded in, bfloat16."""
    import ml_dtypes
    new = layout()
    rng = np.random.default_rng(3)
    old = {}
    for name, shape in new.items():
        old_name = (name.replace("LayerNorm_1", "LayerNorm_2").replace("MlpBlock_0", "MlpBlock_3")
                    .replace("MultiHeadDotProductAttention_0", "MultiHeadDotProductAttention_1"))
        old[old_name] = rng.normal(size=shape).astype(np.float32)
    posemb = old.pop("pos_embedding")
    cls_pos = rng.normal(size=(1, 1, 16)).astype(np.float32)
    old["Transformer/posembed_input/pos_embedding"] = np.concatenate([cls_pos, posemb], axis=1)  # 1 + 4 * 4
    bf16 = old["embedding/kernel"].astype(ml_dtypes.bfloat16)
    old["embedding/kernel"] = bf16
    np.savez(tmp_path / "old.npz", **{f"params/{k}": v for k, v in old.items()})
    flat = pretrained.read_big_vision_npz(tmp_path / "old.npz")
    assert set(flat) == set(new)
    np.testing.assert_array_equal(flat["pos_embedding"], posemb)
    np.testing.assert_array_equal(flat["cls"], old["cls"] + cls_pos)
    np.testing.assert_array_equal(flat["Transformer/encoderblock_1/MlpBlock_0/Dense_1/bias"],
                                  old["Transformer/encoderblock_1/MlpBlock_3/Dense_1/bias"])
    assert flat["embedding/kernel"].dtype == np.float32
    np.testing.assert_array_equal(flat["embedding/kernel"], bf16.astype(np.float32))


def test_position_embeddings_of_another_grid_are_resampled(tmp_path, small_vit):
    arrays = write_big_vision_npz(tmp_path / "vit.npz", layout(patch=8, grid=7))  # e.g. 56 px upstream.
    _, params = small_vit  # 32 px / 8 = a 4 x 4 grid.
    loaded, report = pretrained.load_pretrained(params, tmp_path / "vit.npz")
    assert loaded["pos_embedding"].shape == (1, 16, 16)
    assert report.resampled == ["pos_embedding (1, 49, 16) -> (1, 16, 16)"]
    grid = arrays["pos_embedding"].reshape(7, 7, 16)
    out = np.asarray(loaded["pos_embedding"]).reshape(4, 4, 16)
    np.testing.assert_allclose(out[0, 0], grid[0, 0], rtol=1e-6)  # Bilinear: the corners are kept.
    np.testing.assert_allclose(out[3, 3], grid[6, 6], rtol=1e-6)


def test_a_deterministic_checkpoint_fine_tunes_a_batchensemble_model(tmp_path, small_be_vit):
    arrays = write_big_vision_npz(tmp_path / "vit.npz", layout())
    _, params = small_be_vit
    loaded, report = pretrained.load_pretrained(params, tmp_path / "vit.npz")
    flat = checkpoints.flatten(loaded)
    dense = "Transformer/encoderblock_1/MlpBlock_0/Dense_0"
    np.testing.assert_array_equal(flat[f"{dense}/kernel"], arrays[f"{dense}/kernel"])  # Shared weight loaded.
    np.testing.assert_array_equal(flat[f"{dense}/bias"], np.tile(arrays[f"{dense}/bias"], (3, 1)))  # Per member.
    assert f"{dense}/fast_weight_alpha" in report.kept_init


def test_shape_mismatch_names_every_parameter_before_anything_is_returned(tmp_path, small_vit):
    write_big_vision_npz(tmp_path / "wide.npz", layout(width=32, mlp_dim=64))
    _, params = small_vit
    with pytest.raises(pretrained.PretrainedError) as e:
        pretrained.load_pretrained(params, tmp_path / "wide.npz")
    message = str(e.value)
    assert "Transformer/encoderblock_0/MlpBlock_0/Dense_0/kernel: checkpoint shape (32, 64), model shape (16, 32)" \
        in message
    assert "embedding/kernel: checkpoint shape (8, 8, 3, 32), model shape (8, 8, 3, 16)" in message


def test_missing_parameters_and_missing_file_are_errors(tmp_path, small_vit):
    shallow = layout(depth=1)
    write_big_vision_npz(tmp_path / "shallow.npz", shallow)
    _, params = small_vit
    with pytest.raises(pretrained.PretrainedError,
                       match="encoderblock_1/LayerNorm_0/bias: missing from the checkpoint"):
        pretrained.load_pretrained(params, tmp_path / "shallow.npz")
    with pytest.raises(pretrained.PretrainedError, match="does not exist"):
        pretrained.load_pretrained(params, tmp_path / "absent.npz")
