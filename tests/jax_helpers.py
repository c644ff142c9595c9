"""Test helpers of the JAX path: a tiny CIFAR-10 in the suite's prepared format (generated
PNGs: 10 classes, each a distinct mean colour plus noise, learnable in a few steps; one
corrupted test set), big_vision's ViT checkpoint layout, and a tiny Flax ViT."""
import pathlib

import numpy as np

SMALL_VIT = dict(patch_size=(8, 8), width=16, depth=2, mlp_dim=32, num_heads=2)


def initialised_vit(**kwargs):
    """(model, params) of a tiny ViT (SMALL_VIT updated with kwargs), initialised jitted."""
    import jax
    import jax.numpy as jnp
    from uncertainty_baselines.jax_training import vit
    model = vit.ViT(**{**SMALL_VIT, **kwargs})
    return model, jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))["params"]

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def write_pngs(root: pathlib.Path, per_class: dict, seed: int = 0) -> None:
    from PIL import Image
    rng = np.random.default_rng(seed)
    colours = rng.integers(30, 226, size=(len(CLASSES), 3))
    for split, n in per_class.items():
        for c, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                image = np.clip(colours[c] + rng.normal(0, 40, size=(32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(image).save(folder / f"{i:04d}.png")


def prepare_tiny_cifar10(root: pathlib.Path, train_per_class: int = 16, test_per_class: int = 4,
                         corruptions: tuple = ()) -> pathlib.Path:
    """Prepared data folder holding cifar10 (and cifar10_corrupted for `corruptions`, a
    tuple of (type, severity))."""
    from uncertainty_baselines.datasets import prepare
    source, data_dir = root / "src", root / "tfds"
    write_pngs(source, {"train": train_per_class, "test": test_per_class})
    prepare.prepare("cifar10", source, data_dir, check=False)
    if corruptions:
        from uncertainty_baselines.datasets import corrupted_builder
        corrupted_builder.prepare_corrupted("cifar10", data_dir, data_dir,
                                            corruption_types=sorted({t for t, _ in corruptions}),
                                            severities=sorted({s for _, s in corruptions}), num_workers=1)
    return data_dir


_PREPARED: dict = {}


def prepared(tmp_path_factory) -> pathlib.Path:
    """The tiny set (160 train / 40 test images, gaussian_noise severity 1 corrupted test set),
    prepared once per test session whichever test module asks first."""
    if "dir" not in _PREPARED:
        _PREPARED["dir"] = prepare_tiny_cifar10(tmp_path_factory.mktemp("tiny_cifar10"),
                                                corruptions=(("gaussian_noise", 1),))
    return _PREPARED["dir"]


def big_vision_layout(*, depth: int, width: int, mlp_dim: int, num_heads: int, patch: int, grid: int,
                      num_classes: int, channels: int = 3, pool_type: str = "tok") -> dict:
    """{name: shape} of the parameters big_vision's models/vit.py creates (its module names:
    nn.Conv 'embedding', param 'pos_embedding', param 'cls' for pool_type 'tok', Encoder
    'Transformer' of Encoder1DBlock 'encoderblock_<i>' = LayerNorm_0,
    MultiHeadDotProductAttention_0 (query/key/value kernel [D, H, D/H], bias [H, D/H]; out
    kernel [H, D/H, D], bias [D]), LayerNorm_1, MlpBlock_0 (Dense_0, Dense_1), then
    LayerNorm 'encoder_norm' and nn.Dense 'head'), written independently of our model."""
    head_dim = width // num_heads
    layout = {"embedding/kernel": (patch, patch, channels, width), "embedding/bias": (width,),
              "pos_embedding": (1, grid * grid, width),
              "Transformer/encoder_norm/scale": (width,), "Transformer/encoder_norm/bias": (width,),
              "head/kernel": (width, num_classes), "head/bias": (num_classes,)}
    if pool_type == "tok":
        layout["cls"] = (1, 1, width)
    for i in range(depth):
        block = f"Transformer/encoderblock_{i}"
        for norm in ("LayerNorm_0", "LayerNorm_1"):
            layout[f"{block}/{norm}/scale"] = (width,)
            layout[f"{block}/{norm}/bias"] = (width,)
        attention = f"{block}/MultiHeadDotProductAttention_0"
        for proj in ("query", "key", "value"):
            layout[f"{attention}/{proj}/kernel"] = (width, num_heads, head_dim)
            layout[f"{attention}/{proj}/bias"] = (num_heads, head_dim)
        layout[f"{attention}/out/kernel"] = (num_heads, head_dim, width)
        layout[f"{attention}/out/bias"] = (width,)
        layout[f"{block}/MlpBlock_0/Dense_0/kernel"] = (width, mlp_dim)
        layout[f"{block}/MlpBlock_0/Dense_0/bias"] = (mlp_dim,)
        layout[f"{block}/MlpBlock_0/Dense_1/kernel"] = (mlp_dim, width)
        layout[f"{block}/MlpBlock_0/Dense_1/bias"] = (width,)
    return layout


def write_big_vision_npz(path: pathlib.Path, layout: dict, seed: int = 0, prefix: str = "") -> dict:
    """A checkpoint as big_vision saves one (np.savez of '/'-joined names) with random
    values; returns the arrays written (without the prefix)."""
    rng = np.random.default_rng(seed)
    arrays = {name: rng.normal(0, 0.05, size=shape).astype(np.float32) for name, shape in layout.items()}
    np.savez(path, **{prefix + k: v for k, v in arrays.items()})
    return arrays
