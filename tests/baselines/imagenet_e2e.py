"""A miniature ImageNet in the released layouts (4 classes of noisy coloured JPEGs of varied
sizes: train/<wnid>/, val/<wnid>/ and ImageNet-C's <corruption>/<severity>/<wnid>/ at
224x224), prepared as a class subset by the prepare command's function, in-process: the
data of the ImageNet baselines' end-to-end tests."""
import io
import pathlib

import numpy as np
from PIL import Image

from uncertainty_baselines.datasets.prepare import prepare as prepare_dataset

WNIDS = ("n01440764", "n01443537", "n01484850", "n01491361")
NUM_TRAIN, NUM_TEST = 4 * 16, 4 * 4
CORRUPTIONS, SEVERITIES = ("gaussian_noise", "contrast"), (1, 2, 3, 4, 5)
COLOURS = ((255, 40, 40), (40, 255, 40), (40, 40, 255), (230, 230, 40))


def jpeg(rng, k, size):
    """A JPEG of class k's colour with pixel noise, `size` (height, width)."""
    image = np.clip(np.array(COLOURS[k]) + rng.normal(0, 30, (*size, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write_sources(root: pathlib.Path) -> pathlib.Path:
    rng = np.random.default_rng(0)
    for split, per_class in (("train", NUM_TRAIN // 4), ("val", NUM_TEST // 4)):
        for k, wnid in enumerate(WNIDS):
            folder = root / "imagenet" / split / wnid
            folder.mkdir(parents=True)
            for i in range(per_class):
                (folder / f"{wnid}_{i}.JPEG").write_bytes(jpeg(rng, k, (48 + 4 * i, 56)))
    for corruption in CORRUPTIONS:
        for severity in SEVERITIES:
            for k, wnid in enumerate(WNIDS):
                folder = root / "imagenet_c" / corruption / str(severity) / wnid
                folder.mkdir(parents=True)
                for i in range(2):
                    (folder / f"{wnid}_{i}.JPEG").write_bytes(jpeg(rng, k, (224, 224)))
    for k, wnid in enumerate(WNIDS):  # ImageNet-A's and -V2's released layouts, 2 images a class.
        for i in range(2):
            for path in (root / "a" / "imagenet-a" / wnid / f"0.{i}_{wnid}.jpg",
                         root / "v2" / "imagenetv2-matched-frequency-format-val" / str(k) / f"{i}abc.jpeg"):
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(jpeg(rng, k, (40, 44)))
    return root


def prepare(root: pathlib.Path) -> pathlib.Path:
    """Sources under root/src, prepared (imagenet2012, imagenet2012_corrupted, imagenet_a and
    imagenet_v2) into root/tfds. The sorted wnids of the 4 classes are class indices 0-3."""
    src = write_sources(root / "src")
    for name, source in (("imagenet2012", src / "imagenet"), ("imagenet2012_corrupted", src / "imagenet_c"),
                         ("imagenet_a", src / "a"), ("imagenet_v2", src / "v2")):
        prepare_dataset(name, source, root / "tfds", classes=WNIDS, check=False)
    return root / "tfds"
