r"""A plain Keras WRN-16-2 on the CIFAR-10 JPEG copy, written without the library.

The independent check of the issue's "plain Keras script" figure: WRN-16-2 (pre-activation,
no conv biases, Keras' default Glorot init and batch norm), pad-4 random crop and flip,
Nesterov SGD 0.9, L2 5e-4 as `kernel_regularizer`, batch 128 (the last partial batch kept),
a 200-step linear warm-up to `--peak_lr` then cosine decay to zero, `model.fit`. It reads
the JPEG zip itself and scores the 10,000 test images (accuracy, NLL, 15-bin ECE).
`--shortcut_input=raw` makes its 1x1 shortcut convs read the block's raw input, as the
reference WRN (and `ub.models` by default) does, instead of the block's first BN-ReLU.

  python experimental/plain_keras_wrn/train.py --zip ../shared/data/cifar10-jpeg.zip --seed 0
"""
from __future__ import annotations

import argparse
import io
import json
import time
import zipfile

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def load_split(zip_path: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [N, 32, 32, 3] and labels of `<root>/<split>/<class>/<name>.jpg`, sorted by path."""
    images, labels = [], []
    with zipfile.ZipFile(zip_path) as archive:
        for name in sorted(archive.namelist()):
            parts = name.split("/")
            if len(parts) == 4 and parts[1] == split and parts[2] in CLASSES and name.endswith(".jpg"):
                images.append(np.array(Image.open(io.BytesIO(archive.read(name))).convert("RGB")))
                labels.append(CLASSES.index(parts[2]))
    if not images:
        raise ValueError(f"{zip_path}: no {split}/<class>/*.jpg images")
    return np.stack(images), np.array(labels, np.int64)


def wide_resnet_16_2(shortcut_input: str, l2: float) -> keras.Model:
    """WRN-16-2 with Keras defaults; a 1x1 shortcut conv reads `shortcut_input` ("activated" or "raw")."""
    regularizer = keras.regularizers.l2(l2)

    def conv(x, filters, kernel, strides=1):
        return keras.layers.Conv2D(filters, kernel, strides, padding="same", use_bias=False,
                                   kernel_regularizer=regularizer)(x)

    def bn_relu(x):
        return keras.layers.ReLU()(keras.layers.BatchNormalization()(x))

    def block(x, filters, strides):
        activated = bn_relu(x)
        shortcut = x
        if strides != 1 or x.shape[-1] != filters:
            shortcut = conv(activated if shortcut_input == "activated" else x, filters, 1, strides)
        y = conv(bn_relu(conv(activated, filters, 3, strides)), filters, 3)
        return keras.layers.Add()([shortcut, y])

    inputs = keras.Input((32, 32, 3))
    x = conv(inputs, 16, 3)
    for filters, strides in ((32, 1), (64, 2), (128, 2)):
        x = block(block(x, filters, strides), filters, 1)
    x = keras.layers.GlobalAveragePooling2D()(bn_relu(x))
    return keras.Model(inputs, keras.layers.Dense(10, kernel_regularizer=regularizer)(x))


def calibration(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> dict[str, float]:
    """Accuracy, NLL and ECE (equal-width confidence bins) of predicted probabilities."""
    confidence, predicted = probs.max(1), probs.argmax(1)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    gaps = [abs(np.sum(predicted[which == b] == labels[which == b]) - np.sum(confidence[which == b]))
            for b in range(bins)]
    return {"accuracy": float(np.mean(predicted == labels)),
            "nll": float(-np.mean(np.log(probs[np.arange(len(labels)), labels] + 1e-12))),
            "ece": float(np.sum(gaps) / len(labels))}


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zip", required=True, help="cifar10-jpeg.zip")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--peak_lr", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--warmup_steps", type=int, default=200)
    parser.add_argument("--shortcut_input", choices=("activated", "raw"), default="activated")
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    x_train, y_train = load_split(args.zip, "train")
    x_test, y_test = load_split(args.zip, "test")
    mean, std = x_train.reshape(-1, 3).mean(0) / 255.0, x_train.reshape(-1, 3).std(0) / 255.0

    def normalise(x):
        return (tf.cast(x, tf.float32) / 255.0 - mean) / std

    def augment(x, y):
        x = tf.image.random_crop(tf.image.pad_to_bounding_box(x, 4, 4, 40, 40), [32, 32, 3])
        return normalise(tf.image.random_flip_left_right(x)), y

    train = (tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(len(x_train), seed=args.seed)
             .map(augment, num_parallel_calls=2).batch(args.batch_size).prefetch(2))
    test = tf.data.Dataset.from_tensor_slices((x_test, y_test)).map(lambda x, y: (normalise(x), y)).batch(500)
    steps = args.epochs * int(np.ceil(len(x_train) / args.batch_size))
    if not 0 <= args.warmup_steps < steps:
        raise ValueError(f"--warmup_steps must be in [0, {steps}), got {args.warmup_steps}")
    schedule = keras.optimizers.schedules.CosineDecay(0.0, steps - args.warmup_steps, warmup_target=args.peak_lr,
                                                      warmup_steps=args.warmup_steps)
    model = wide_resnet_16_2(args.shortcut_input, l2=5e-4)
    model.compile(keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    start = time.time()
    history = model.fit(train, epochs=args.epochs, verbose=2)
    probs = tf.nn.softmax(model.predict(test, verbose=0)).numpy()
    result = {**vars(args), **calibration(probs, y_test), "train_accuracy": history.history["accuracy"],
              "parameters": model.count_params(), "wall_min": (time.time() - start) / 60}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
