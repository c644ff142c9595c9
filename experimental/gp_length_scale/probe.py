r"""Which length-scale lets SNGP's GP output layer generalise on BERT's features at all?

Builds `bert_sngp` as `baselines/clinc_intent/sngp.py` does (the pretrained encoder, the
spectrally normalised pooler) and, without training, takes the features its GP layer
receives for the CLINC150 in-domain training queries and the test queries. At each
`--length_scales` value a fresh `ub.layers.RandomFeatureGaussianProcess` with the settings
of the model's own GP layer but the length-scale (its number and kind of random features,
their scaling, layer norm, ridge and exact precision) is fitted in closed form:
its training calls accumulate the precision P = ridge I + Phi^T Phi, its output kernel is
set to the ridge solution P^-1 Phi^T Y (one-hot labels: the GP posterior mean under a
Gaussian likelihood), and its inference calls give the logits and predictive variance of
the test queries. Reported per length-scale: in-domain test accuracy, out-of-scope
detection (AUROC, out-of-scope positive) by predictive variance and by -max logit, and the
median RBF kernel value between test queries of the same intent and of different intents.
A length-scale far below the distances between the features gives a kernel that is ~0
between any two queries: the GP then cannot carry what it learns from one query to
another, and training SNGP starts from a loss that stays at log(151).

  python experimental/gp_length_scale/probe.py --data_dir=/work/data \
      --output_dir=/tmp/gp-length-scale

Writes `<output_dir>/probe.json`: the number of queries of each set and one record per
length-scale.
"""
from __future__ import annotations

import json
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # Run as a script: the experiments import from the repo root.
    sys.path.insert(0, str(REPO))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402

import uncertainty_baselines as ub  # noqa: E402
from uncertainty_baselines.datasets.clinc_intent import OOS_LABEL  # noqa: E402

flags.DEFINE_string("data_dir", None, "Prepared TFDS data (`prepare clinc_intent`).", required=True)
flags.DEFINE_string("output_dir", None, "Where probe.json goes.", required=True)
flags.DEFINE_string("bert_dir", None, "BERT folder; default: the installed MiniLM package's.")
flags.DEFINE_list("length_scales", ["1.4142", "3", "4.5", "7", "10", "20"], "Length-scales to fit, each > 0.")
flags.DEFINE_integer("batch_size", 500, "Queries per encoder call.")
flags.DEFINE_integer("seed", 0, "Seed of the model's spectral norm and of the random features.")
FLAGS = flags.FLAGS
NUM_CLASSES = OOS_LABEL + 1
HEAD_SETTINGS = ("num_inducing", "random_feature_type", "scale_features", "normalize_input",
                 "input_projection_dim", "ridge_penalty", "seed")


def sngp_parts(bert_dir: str | None, seed: int) -> tuple[keras.Model, dict]:
    """token ids -> the features SNGP's GP layer receives (untrained, inference mode), and
    that layer's settings but its length-scale."""
    model = ub.models.get("bert_sngp", bert_dir=bert_dir, seed=seed)
    gp = next(layer for layer in model.layers if isinstance(layer, ub.layers.RandomFeatureGaussianProcess))
    config = gp.get_config()
    return keras.Model(model.input, gp.input), {name: config[name] for name in HEAD_SETTINGS}


def split_features(features: keras.Model, data_dir: str, split: str, data_mode: str,
                   batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """GP-input features and labels of every query of one split, in order (no padding rows)."""
    data = ub.datasets.get("clinc_intent", split=split, data_mode=data_mode, data_dir=data_dir,
                           is_training=False)
    xs, ys = [], []
    for batch in data.load(batch_size=batch_size):
        keep = np.asarray(batch["mask"], bool)  # The last batch's padding rows are dropped.
        xs.append(np.asarray(features(batch["features"], training=False))[keep])
        ys.append(np.asarray(batch["labels"])[keep])
    return np.concatenate(xs), np.concatenate(ys)


def fit_gp(x_train: np.ndarray, y_train: np.ndarray, length_scale: float, head: dict,
           batch_size: int) -> ub.layers.RandomFeatureGaussianProcess:
    """A GP layer with the `head` settings (exact precision) and `length_scale`: its
    precision over the training features, its output kernel at the ridge solution
    P^-1 Phi^T Y."""
    gp = ub.layers.RandomFeatureGaussianProcess(NUM_CLASSES, length_scale=length_scale, covariance_momentum=-1.0,
                                                **head)
    gp.build(x_train.shape)
    phi_t_y = np.zeros((head["num_inducing"], NUM_CLASSES))
    for start in range(0, len(x_train), batch_size):
        x = x_train[start:start + batch_size]
        gp(x, training=True)  # P += Phi^T Phi
        phi_t_y += np.asarray(gp.random_features(x), np.float64).T @ np.eye(NUM_CLASSES)[y_train[start:start + batch_size]]
    gp.kernel.assign(np.linalg.solve(np.asarray(gp.precision, np.float64), phi_t_y).astype("float32"))
    return gp


def median_kernels(z: np.ndarray, labels: np.ndarray, length_scale: float) -> tuple[float | None, float | None]:
    """Median RBF kernel exp(-|z - z'|^2 / 2 l^2) between distinct inputs `z` (the GP's
    normalised inputs) of the same intent, and of different intents (None: no such pair)."""
    sq = np.maximum((z ** 2).sum(1)[:, None] + (z ** 2).sum(1)[None] - 2 * z @ z.T, 0)
    kernel = np.exp(-sq / (2 * length_scale ** 2))
    same = labels[:, None] == labels[None]
    np.fill_diagonal(same, False)
    different = labels[:, None] != labels[None]
    return tuple(float(np.median(kernel[pairs])) if pairs.any() else None for pairs in (same, different))


def probe(x_train, y_train, x_test, y_test, x_oos, length_scale: float, head: dict, batch_size: int) -> dict:
    """One length-scale's record (see the module docstring)."""
    gp = fit_gp(x_train, y_train, length_scale, head, batch_size)
    logits, variance = (np.asarray(t) for t in gp(x_test, training=False))
    oos_logits, oos_variance = (np.asarray(t) for t in gp(x_oos, training=False))
    is_oos = np.r_[np.zeros(len(x_test)), np.ones(len(x_oos))]
    z_test = np.asarray(gp.input_norm(x_test)) if gp.input_norm is not None else x_test
    same, different = median_kernels(z_test, y_test, length_scale)
    return {"length_scale": length_scale,
            "test_accuracy": float((logits.argmax(1) == y_test).mean()),
            "ood_auroc_variance": ub.metrics.auroc(np.r_[variance, oos_variance], is_oos),
            "ood_auroc_max_logit": ub.metrics.auroc(-np.r_[logits.max(1), oos_logits.max(1)], is_oos),
            "kernel_same_intent": same, "kernel_other_intent": different}


def main(argv):
    del argv
    length_scales = [float(value) for value in FLAGS.length_scales]
    if not all(value > 0 for value in length_scales):
        raise app.UsageError(f"--length_scales must all be > 0, got {FLAGS.length_scales}")
    out = pathlib.Path(FLAGS.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    features, head = sngp_parts(FLAGS.bert_dir, FLAGS.seed)
    x_train, y_train = split_features(features, FLAGS.data_dir, "train", "in_domain", FLAGS.batch_size)
    x_test, y_test = split_features(features, FLAGS.data_dir, "test", "in_domain", FLAGS.batch_size)
    x_oos, _ = split_features(features, FLAGS.data_dir, "test", "out_of_scope", FLAGS.batch_size)
    counts = {"train": len(x_train), "test_in_domain": len(x_test), "test_out_of_scope": len(x_oos)}
    logging.info("queries: %s; GP layer settings: %s", counts, head)
    records = []
    for length_scale in length_scales:
        records.append(probe(x_train, y_train, x_test, y_test, x_oos, length_scale, head, FLAGS.batch_size))
        logging.info("%s", "  ".join(f"{k} {v}" if v is None else f"{k} {v:.4g}" for k, v in records[-1].items()))
    (out / "probe.json").write_text(json.dumps({"num_queries": counts, "head": head, "records": records},
                                               indent=1) + "\n")


if __name__ == "__main__":
    app.run(main)
