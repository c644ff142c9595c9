"""What the ImageNet ResNet-50 baselines share: the reference defaults, --image_size, the
ResNet-50 model kwargs and the ImageNet Task (the image task with the crop size passed to
every in-distribution set).

Reference defaults (../shared/reference/BASELINES.md): 90 epochs, LR 0.1 per 256 examples
(--base_learning_rate is per 128, so 0.05), 5 warm-up epochs, x0.1 at epochs 30/60/80, L2
1e-4, global batch 256 (Nesterov momentum 0.9, as every image baseline here).
"""
from __future__ import annotations

from typing import Any

import dataclasses

import tensorflow as tf
from absl import flags

from uncertainty_baselines import datasets, metrics
from uncertainty_baselines.training import experiment
from uncertainty_baselines.training import flags as ub_flags

TRAIN_EPOCHS = 90
DECAY_EPOCHS = (30, 60, 80)
RESNET50_FLAGS = ("image_size", "shifted_datasets")
SHIFTED_DATASETS = ("imagenet_a", "imagenet_r", "imagenet_v2")


def define_imagenet_flags(**overrides: Any) -> None:
    """The image flags at the ImageNet reference defaults (`overrides` change them) and --image_size."""
    train_epochs = overrides.pop("train_epochs", TRAIN_EPOCHS)
    defaults = dict(dataset="imagenet2012", train_epochs=train_epochs, batch_size=256, base_learning_rate=0.05,
                    l2=1e-4, lr_decay_epochs=tuple(e / TRAIN_EPOCHS for e in DECAY_EPOCHS), ood_dataset=(),
                    lr_warmup_epochs=5.0, lr_decay_ratio=0.1)
    ub_flags.define_image_flags(**{**defaults, **overrides})
    flags.DEFINE_integer("image_size", 224, "Side of the square crop the model sees (224 for ImageNet; "
                         "smaller for quick checks).")
    flags.DEFINE_list("shifted_datasets", [], f"Other test sets of the 1,000 classes evaluated with the clean one "
                      f"(accuracy, NLL, ECE, ... as <name>/<metric>), of {list(SHIFTED_DATASETS)}.")


def resnet50_errors(config: Any) -> list[str]:
    """Messages for an invalid --image_size, --shifted_datasets or --dataset, or --eval_on_ood
    (empty when valid)."""
    errors = [] if config.image_size >= 32 else [f"--image_size must be >= 32, got {config.image_size}"]
    unknown = [n for n in config.shifted_datasets if n not in SHIFTED_DATASETS]
    if unknown:
        errors.append(f"--shifted_datasets: unknown {unknown}; valid: {list(SHIFTED_DATASETS)}")
    if config.dataset != "imagenet2012":
        errors.append(f"--dataset must be imagenet2012 (a prepared class subset works too), got {config.dataset}")
    if config.eval_on_ood:
        errors.append("--eval_on_ood: the ImageNet baselines have no OOD set; their shifted sets are "
                      "--shifted_datasets and ImageNet-C")
    return errors


def resnet50_kwargs(config: Any, data: Any) -> dict[str, Any]:
    """The `resnet50` registry kwargs of a run: the data's shape and classes, L2, seed."""
    return {"input_shape": list(data.input_shape), "num_classes": data.num_classes, "l2": config.l2,
            "seed": config.seed}


def imagenet_data(config: Any, strategy: tf.distribute.Strategy, train_batch_size: int) -> experiment.ImageData:
    """The image task's data with every in-distribution set cropped to --image_size; an
    evaluation covering every severity of ImageNet-C types also reports
    `test/mean_corruption_error` and `test/corruption_error_<type>` (AlexNet-normalised
    corruption errors, `ub.metrics.imagenet_c_mce`).
    The --shifted_datasets are evaluated on all 1,000 logits (BASELINES.md names no 200-class
    restriction for ImageNet-A/-R)."""
    size = {"image_size": config.image_size}
    data = experiment.image_data(config, strategy, train_batch_size, dataset_kwargs=size)
    eval_batch = config.eval_batch_size or config.batch_size
    shifted = {name: datasets.get(name, "test", data_dir=config.data_dir, download_data=config.download_data,
                                  **size).load(batch_size=eval_batch, strategy=strategy)
               for name in config.shifted_datasets}
    return dataclasses.replace(data, shifted=shifted, derived_metrics=metrics.imagenet_c_mce_from_flat)


IMAGENET_TASK = experiment.Task(validate=ub_flags.validate_image_flags, load_data=imagenet_data,
                                optimizer=experiment.default_optimizer, config=ub_flags.image_config)
