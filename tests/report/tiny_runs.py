"""Tiny run folders written the way a baseline writes them: each evaluation goes through
`training.evaluation.evaluate` (with the CurveRecorder the training loop uses), its metrics
to metrics.jsonl by `summaries.SummaryWriter`, its curves by `curves.append_curves`, and
the end by `run_record.write_run_record`. Only the model is replaced: predictions are
drawn at random, sharper each epoch."""
import json
import pathlib

import numpy as np

from uncertainty_baselines.runs import curves, run_record, summaries
from uncertainty_baselines.training import evaluation

NUM_CLASSES = 10
CORRUPTIONS = ("gaussian_noise", "contrast")


def predictions(n, seed, sharpness, ood=0):
    """loop.predict-style outputs: logits/probs [n, K], labels, ids; the last `ood` rows are
    OOD (label -1, is_in_distribution 0) and predicted with less confidence (`ood` = n: an
    OOD set's OOD examples, as evaluation.evaluate takes them)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, NUM_CLASSES, n)
    logits = rng.normal(size=(n, NUM_CLASSES))
    logits[np.arange(n), labels] += sharpness
    if ood:
        logits[n - ood:] *= 0.3
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    out = {"logits": logits.astype(np.float32), "probs": probs.astype(np.float32), "labels": labels,
           "id": np.arange(n)}
    if ood:
        out["is_in_distribution"] = np.r_[np.ones(n - ood, int), np.zeros(ood, int)]
        out["labels"] = np.where(out["is_in_distribution"] == 1, labels, -1)
    return out


def write_run(path, *, dataset="fashion_mnist", seed=0, epochs=3, ood=True, severities=(1, 3),
              with_curves=True, with_command=True, finished=True, method="deterministic", shifted=False):
    """A run folder at `path`; returns it. `with_curves=False` / `with_command=False` give
    what runs recorded before curves.jsonl / the command existed; `finished=False` stops
    before run.json."""
    path = pathlib.Path(path)
    path.mkdir(parents=True)
    flags = {"dataset": dataset, "seed": seed, "train_epochs": epochs, "eval_on_ood": ood,
             "ood_dataset": ["mnist"], "severities": [str(s) for s in severities], "output_dir": str(path)}
    (path / "flags.json").write_text(json.dumps(flags, sort_keys=True))
    writer = summaries.SummaryWriter(path, tensorboard=False)
    flat = {}
    for epoch in range(1, epochs + 1):
        sharp = 0.8 + 0.7 * epoch + 0.2 * seed
        sets = {"test": predictions(300, seed, sharp), "mnist": predictions(200, seed + 1, sharp, ood=200),
                "shifted": predictions(200, seed + 2, sharp / 2)}
        corrupted = {(kind, s): (kind, s) for kind in CORRUPTIONS for s in severities} if epoch == epochs else {}
        for kind, s in corrupted:
            sets[(kind, s)] = predictions(300, seed + 10 * s + len(kind), sharp / (1 + 0.4 * s))
        recorder = evaluation.CurveRecorder(NUM_CLASSES, ("msp", "entropy"))
        flat, _ = evaluation.evaluate(lambda ds: sets[ds], num_classes=NUM_CLASSES, test="test",
                                      ood={"mnist": "mnist"} if ood else None, corrupted=corrupted or None,
                                      shifted={"shifted_v2": "shifted"} if shifted else None,
                                      ood_score_kinds=("msp", "entropy"), on_predictions=recorder)
        train = {"train/loss": 2.3 / epoch, "train/accuracy": 1 - 0.8 / epoch}
        step = 10 * epoch
        writer.write(step, {**train, **flat}, epoch=epoch)
        if with_curves:
            curves.append_curves(path, step, recorder.curves, epoch=epoch)
    if finished:
        run_record.write_run_record(path, flags=flags, metrics={**flat, "train/loss": 2.3 / epochs}, seed=seed,
                                    data_fingerprint=run_record.fingerprint(dataset, "test split"),
                                    wall_time_s=12.0, extra={"method": method, "steps": 10 * epochs})
        if not with_command:
            record = json.loads((path / "run.json").read_text())
            del record["command"]
            (path / "run.json").write_text(json.dumps(record))
    return path


def write_regression_run(path, *, dataset="uci_yacht", splits=4, seed=0):
    """A UCI-style run: one metrics.jsonl line per split, run.json with means and standard errors."""
    path = pathlib.Path(path)
    path.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    writer = summaries.SummaryWriter(path, tensorboard=False)
    per_split = []
    for k in range(splits):
        result = {"test/log_likelihood": float(-1 - rng.random()), "test/rmse": float(1 + rng.random())}
        per_split.append(result)
        writer.write(k, result, split=k)
    summary = {}
    for key in per_split[0]:
        values = np.array([r[key] for r in per_split])
        summary[key] = float(values.mean())
        summary[f"{key}_se"] = float(values.std() / np.sqrt(splits))
    run_record.write_run_record(path, flags={"dataset": dataset, "split": "all"}, metrics=summary, seed=seed,
                                data_fingerprint=run_record.fingerprint(dataset), wall_time_s=3.0,
                                extra={"method": "ensemble"})
    return path
