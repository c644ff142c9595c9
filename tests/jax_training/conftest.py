"""Tiny Flax ViTs initialised once per session (compiling an init costs seconds on 2 cores)."""
import pytest

from jax_helpers import initialised_vit


@pytest.fixture(scope="session")
def small_vit():
    """(model, params): deterministic, 10 classes, 4 x 4 patches of 8 px, class token."""
    return initialised_vit(num_classes=10)


@pytest.fixture(scope="session")
def small_be_vit():
    """(model, params): BatchEnsemble of 3 in encoder layer 1 and the head, 10 classes."""
    return initialised_vit(num_classes=10, ens_size=3, be_layers=(1,))
