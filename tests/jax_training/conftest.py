"""Tiny Flax ViTs initialised once per session (compiling an init costs seconds on 2 cores)."""
import jax
import jax.numpy as jnp
import pytest

from uncertainty_baselines.jax_training import vit

SMALL = dict(patch_size=(8, 8), width=16, depth=2, mlp_dim=32, num_heads=2)


def initialised(**kwargs):
    model = vit.ViT(**{**SMALL, **kwargs})
    return model, jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))["params"]


@pytest.fixture(scope="session")
def small_vit():
    """(model, params): deterministic, 10 classes, 4 x 4 patches of 8 px, class token."""
    return initialised(num_classes=10)


@pytest.fixture(scope="session")
def small_be_vit():
    """(model, params): BatchEnsemble of 3 in encoder layer 1 and the head, 10 classes."""
    return initialised(num_classes=10, ens_size=3, be_layers=(1,))
