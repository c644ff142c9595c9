"""The layers and the stacked MLP run on every Keras backend (keras.ops only); MC dropout's
mathematics on the non-TensorFlow path (keras.random masks; TensorFlow hashes its own,
tests/layers/test_layers.py): inverted scaling, its rate, per-member rates, filter-wise maps."""
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
ones = np.ones((200, 100), "float32")
out = keras.ops.convert_to_numpy(MCDropout(0.25, seed=1)(ones))
assert set(np.unique(out)) == {0.0, np.float32(1 / 0.75)}  # inverted dropout
assert abs((out == 0).mean() - 0.25) < 0.01  # 20,000 draws: s.d. of the rate ~0.003
per_member = keras.ops.convert_to_numpy(MCDropout([0.0, 0.5], seed=0)(np.ones((2, 100, 50), "float32")))
assert (per_member[0] == 1).all() and abs((per_member[1] == 0).mean() - 0.5) < 0.02
maps = keras.ops.convert_to_numpy(MCDropout(0.5, seed=3, filterwise=True)(np.ones((64, 4, 4, 32), "float32")))
dropped = maps[:, 0, 0, :] == 0
assert ((maps == 0) == dropped[:, None, None, :]).all()  # whole feature maps per example
assert abs(dropped.mean() - 0.5) < 0.05  # 2,048 maps: s.d. 0.011
print("ok", keras.backend.backend())
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_layers_and_stacked_mlp_on_backend(backend):
    run_on_backend(PROGRAM, backend)
