"""The layers and the stacked MLP run on every Keras backend (keras.ops only)."""
import pytest

from backend_run import run_on_backend

PROGRAM = """
import numpy as np, keras
from uncertainty_baselines.layers import MCDropout
from uncertainty_baselines.models.mlp import mlp_gaussian, mlp_variational_gaussian
x = np.ones((3, 4, 5), "float32")
for model in (mlp_gaussian(5, num_members=3),
              mlp_gaussian(5, num_members=3, dropout_rate=[0.1, 0.2, 0.3]),
              mlp_variational_gaussian(5, num_members=3)):
    out = keras.ops.convert_to_numpy(model(x))
    assert out.shape == (3, 4, 2) and (out[..., 1] > 0).all(), model.layers
layer = MCDropout(0.5, seed=0)
a, b = (keras.ops.convert_to_numpy(layer(x, training=False)) for _ in range(2))
assert not np.array_equal(a, b)  # still sampling at inference
print("ok", keras.backend.backend())
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_layers_and_stacked_mlp_on_backend(backend):
    run_on_backend(PROGRAM, backend)
