"""Run by test_model_backends.py under KERAS_BACKEND=jax or torch; prints one JSON line.

It runs the sanity command on a tiny Wide ResNet (smoke subset of checks), builds the
two-head method model through the registry, shows that the backend's own gradient and
variable checks fail on broken models, and on torch trains the model in a plain PyTorch loop.
"""
import json
import pathlib

import keras
import numpy as np

import uncertainty_baselines as ub
from uncertainty_baselines import sanity

from sanity_models import ScaleWithFrozenOrUnusedWeight, SubtractBatchMean, mlp_with  # on PYTHONPATH

SMOKE_CHECKS = "initial_loss,trainable_variables_change,batch_independence,determinism"


def two_head_logits_shape() -> list[int]:
    """Shape of the registered two-head Wide ResNet's logits for two 8x8 images."""
    ub.models.register("two_head_wide_resnet", "method_models:two_head_wide_resnet")
    model = ub.models.get("two_head_wide_resnet", input_shape=[8, 8, 3], depth=10,
                          width_multiplier=1, num_classes=4)
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype(np.float32)
    logits = keras.ops.convert_to_numpy(model(x, training=False))
    assert np.isfinite(logits).all()
    return list(logits.shape)


def passed(layer_factory, check: str, x, y) -> bool:
    return sanity.run_sanity(mlp_with(layer_factory), x, y, checks=(check,)).passed


def torch_loop_losses(steps: int = 5) -> dict:
    """Trains a tiny Wide ResNet with torch.optim.SGD and plain autograd; returns the losses."""
    import torch
    model = ub.models.get("wide_resnet", input_shape=(8, 8, 3), depth=10, width_multiplier=1,
                          num_classes=4)
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.standard_normal((16, 8, 8, 3)).astype(np.float32))
    y = torch.tensor(rng.integers(4, size=16))
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05,
                                momentum=0.9)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x, training=True), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"is_module": isinstance(model, torch.nn.Module), "losses": losses,
            "torch_trainable": trainable,
            "keras_trainable": sum(int(np.prod(v.shape)) for v in model.trainable_variables)}


def main() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 8)).astype(np.float32), rng.integers(3, size=8)
    result = {
        "backend": keras.backend.backend(),
        "package": str(pathlib.Path(ub.__file__).parent),
        "two_head_logits_shape": two_head_logits_shape(),
        "cli_status": sanity.main(["--model", "wide_resnet", "--depth", "10", "--width", "1",
                                   "--input_shape", "8,8,3", "--batch", "8",
                                   "--checks", SMOKE_CHECKS]),
        "mixing_passes": passed(lambda: SubtractBatchMean(True), "batch_independence", x, y),
        "control_passes": passed(lambda: SubtractBatchMean(False), "batch_independence", x, y),
        "unused_passes": passed(lambda: ScaleWithFrozenOrUnusedWeight("unused"),
                                "trainable_variables_change", x, y),
    }
    if result["backend"] == "torch":
        result["torch_loop"] = torch_loop_losses()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
