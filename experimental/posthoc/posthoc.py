r"""Post-hoc uncertainty on a finished classification run: one command, no retraining.

Takes a finished run directory (or release bundle) of a single deterministic network,
image (CIFAR, Fashion-MNIST, ...) or text (CLINC150), fits on a held-out part that is
never the test set, and evaluates on the same test, OOD and corrupted sets as the run
(rebuilt from its run.json; CLINC: the in-domain test set, and the combined test set,
whose out-of-scope queries are the OOD examples, as OOD set `combined`; no corrupted
sets), writing `posthoc.json` with the run's flat metric names under a method prefix
(`temperature/test/ece`, `laplace_kfac/ood/mnist_auroc`, `conformal_aps/test/set_size`, ...):

  raw              the run's own softmax, recomputed (checks the model and data: its
                   test/accuracy must equal the run's)
  temperature      temperature scaling (ub.metrics.fit_temperature) on the held-out part
  conformal_aps    split-conformal APS sets (ub.metrics.SplitConformal) calibrated on the
  conformal_raps   held-out part: coverage and mean set size on test and each corrupted set,
                   set size on OOD examples
  laplace_diag     last-layer Laplace (laplace.py): curvature on the --fit part, prior
  laplace_kfac     precision by held-out NLL, probit or MC predictive
  ddu              class-conditional Gaussians on the penultimate features of the --fit
                   part (density.py): OOD detection by -log density

  python experimental/posthoc/posthoc.py --run=/work/runs/table/det-s42 \
      --output_dir=/tmp/posthoc-det-s42 --heldout='train[45000:50000]' --fit='train[:10000]'
  python experimental/posthoc/posthoc.py --run=/work/runs/clinc/deterministic-seed0 \
      --output_dir=/tmp/posthoc-clinc --heldout=validation

Held-out part (--heldout): `validation`, examples the run never saw: its own carve-out
(a run trained with --train_examples N keeps training examples N.. out of training), else
the dataset's own validation split (CLINC: its 3,000 in-domain validation queries); or
`train[a:b]`, a stated slice of the training split (seen in training when the run trained
on it: stated in posthoc.json). Never the test set: a test split, or a held-out part
overlapping the --fit part, is refused, and held-out or fit examples whose preprocessed
input (pixels, token ids) equals a test example's (sha256) are dropped and counted.
Penultimate features and logits of every set are cached in `<output_dir>/features/`
(runs.predictions format, with `features` and `digest`) and reused when the run's weights
and the sets are the same.
"""
from __future__ import annotations

import hashlib
import math
import os
import pathlib
import re
import sys
import time
import types
from typing import Any, Mapping, NamedTuple, Sequence

REPO = pathlib.Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # Run as a script: the experiments import from the repo root.
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from scipy import special  # noqa: E402

from experimental.posthoc import density, laplace  # noqa: E402
from uncertainty_baselines import metrics as ub_metrics  # noqa: E402
from uncertainty_baselines.runs import bundle, checkpoint, lock, predictions, run_record  # noqa: E402

METHODS = ("temperature", "conformal_aps", "conformal_raps", "laplace_diag", "laplace_kfac", "ddu")
# Methods that predict with one eval-mode pass of one network whose output layer is a Dense.
SINGLE_NETWORK_METHODS = ("deterministic",)
FEATURES_SUBDIR = "features"
FIT_EXAMPLES = 10_000  # The default fit part of an image run: at most this many training examples.
RESULT_FILE = "posthoc.json"

FLAG_NAMES = ("run", "output_dir", "data_dir", "heldout", "fit", "coverage", "methods", "laplace_predictive",
              "laplace_samples", "batch_size", "seed", "corruption_types", "severities")


def define_flags() -> None:
    """The command's absl flags (defined when run as a script, not on import)."""
    flags.DEFINE_string("run", None, "Finished run directory or release bundle (folder or .tar.gz).")
    flags.DEFINE_string("output_dir", None, "Where posthoc.json and the feature cache go (never inside the run).")
    flags.DEFINE_string("data_dir", None, "Data directory (default: the run's --data_dir, else $UB_DATA_DIR).")
    flags.DEFINE_string("heldout", "validation", "The part fit on: 'validation' (examples the run never saw: "
                        "its carve-out, else the dataset's own validation split, e.g. CLINC's) or "
                        "'train[a:b]' (a slice of the training split); never the test set.")
    flags.DEFINE_string("fit", "auto", "Training examples for the Laplace curvature and the class Gaussians: "
                        "'train[a:b]', or 'auto': an image run's first min(10000, its training examples), a "
                        "text run's every training example (CLINC's are ordered by intent); disjoint from "
                        "--heldout.")
    flags.DEFINE_float("coverage", 0.9, "Nominal coverage level 1 - alpha of the conformal sets, in (0, 1).")
    flags.DEFINE_list("methods", list(METHODS), f"Post-hoc methods to apply, of {list(METHODS)}.")
    flags.DEFINE_enum("laplace_predictive", "probit", list(laplace.PREDICTIVES), "Laplace predictive.")
    flags.DEFINE_integer("laplace_samples", 100, "Samples of the MC Laplace predictive.")
    flags.DEFINE_integer("batch_size", 500, "Evaluation batch size.")
    flags.DEFINE_integer("seed", 0, "Seed of the conformal randomisation and the MC predictive.")
    flags.DEFINE_list("corruption_types", None, "Corruption types (default: the run's; image runs only).")
    flags.DEFINE_list("severities", None, "Corruption severities (default: the run's; image runs only).")


FLAGS = flags.FLAGS


class PosthocError(ValueError):
    """A run, held-out part or flag the post-hoc methods cannot take; the message says why."""


# ----- the run -------------------------------------------------------------------------------
def read_run(path: str | os.PathLike) -> dict[str, Any]:
    """The run record of a finished single-network classification run directory (with a
    checkpoint) or bundle; PosthocError otherwise."""
    path = pathlib.Path(path)
    if not path.exists():
        raise PosthocError(f"{path} does not exist: give a finished run directory or a release bundle")
    if bundle.is_bundle(path):
        try:
            record = bundle.read(path).record
        except bundle.BundleError as e:
            raise PosthocError(str(e)) from None
    else:
        try:
            record = run_record.read_run_record(path)
        except (OSError, ValueError) as e:
            raise PosthocError(f"{path} is not a finished run: {e}") from None
        if not checkpoint.list_checkpoints(path / checkpoint.SUBDIR):
            raise PosthocError(f"{path} has no checkpoint under {path / checkpoint.SUBDIR}: nothing to load")
    run_flags, metrics = record.get("flags") or {}, record.get("metrics") or {}
    dataset = str(run_flags.get("dataset"))
    if dataset.startswith("uci_") or "test/accuracy" not in metrics:
        raise PosthocError(f"{path} is not a classification run (dataset {dataset!r}, no test/accuracy in its "
                           "metrics): post-hoc calibration, conformal sets and OOD scores need class predictions")
    if not record.get("model"):
        raise PosthocError(f"{path} records no single network (an ensemble of runs?): apply the post-hoc "
                           "methods to each member run")
    method = record.get("method", "deterministic")
    if method not in SINGLE_NETWORK_METHODS:
        raise PosthocError(f"{path} is a {method!r} run; the post-hoc methods take one network predicting in one "
                           f"eval-mode pass through a Dense output layer ({', '.join(SINGLE_NETWORK_METHODS)})")
    return record


def is_text(dataset: str) -> bool:
    from uncertainty_baselines.training import text
    return dataset in text.DATASETS


def feature_extractor(model: Any) -> tuple[Any, np.ndarray, np.ndarray]:
    """(model mapping its one input to [penultimate features, logits], kernel, bias) of a
    model whose last layer is a linear Dense (a BERT classifier: the pooled features)."""
    import keras
    head = model.layers[-1]
    if type(head) is not keras.layers.Dense or head.activation is not keras.activations.linear:
        raise PosthocError(f"the model's last layer is {type(head).__name__}, not a linear Dense: "
                           "the last-layer methods need one")
    if len(model.inputs) != 1:
        raise PosthocError(f"the model takes {len(model.inputs)} inputs ({[t.name for t in model.inputs]}); the "
                           "post-hoc command feeds each example's `features` alone, as the training loop does "
                           "(a BERT classifier needs token_ids_only, as the CLINC baselines build it)")
    kernel, bias = (np.asarray(w, np.float64) for w in head.get_weights())
    return keras.Model(model.inputs[0], [head.input, model.outputs[0]]), kernel, bias


# ----- held-out and fit parts ----------------------------------------------------------------
_SLICE = re.compile(r"^train\[(-?\d*):(-?\d*)\]$")


def check_spec(spec: str, what: str) -> None:
    """PosthocError unless `spec` names a held-out or fit part (see resolve_part)."""
    spec = spec.strip()
    if spec.startswith(("test", "ood")) or "corrupted" in spec:
        raise PosthocError(f"--{what}={spec!r}: the {what} part must never be the test set (or an OOD or "
                           "corrupted test set): the post-hoc methods are evaluated there")
    if not (spec == "validation" or _SLICE.match(spec) or (spec == "auto" and what == "fit")):
        raise PosthocError(f"--{what}={spec!r}: expected 'validation' or 'train[a:b]'"
                           + (" or 'auto'" if what == "fit" else ""))


class Part(NamedTuple):
    """Examples [start, stop) of one split of the dataset: 'train', or its own 'validation'."""
    split: str
    start: int
    stop: int

    def __str__(self) -> str:
        return f"{self.split}[{self.start}:{self.stop}]"


def resolve_part(spec: str, *, total: int, trained: int, what: str, validation_size: int = 0,
                 fit_limit: int | None = FIT_EXAMPLES) -> Part:
    """The Part named by `validation`, `train[a:b]` or (the fit part) `auto`.

    `validation` is the run's carve-out, training examples [trained, total), else (a run
    trained on every training example) the dataset's own validation split of
    `validation_size` examples when it has one. `auto` is the first min(fit_limit,
    trained) training examples (all of them when fit_limit is None)."""
    check_spec(spec, what)
    spec = spec.strip()
    if spec == "auto":
        return Part("train", 0, trained if fit_limit is None else min(fit_limit, trained))
    if spec == "validation":
        if trained < total:
            return Part("train", trained, total)
        if validation_size > 0:
            return Part("validation", 0, validation_size)
        raise PosthocError(f"--{what}=validation: the run trained on all {total} training examples, so it has "
                           "no validation carve-out (and the dataset no validation split of its own); give a "
                           f"slice of the training split, e.g. --{what}='train[{total - total // 10}:{total}]' "
                           "(seen in training)")
    start, stop, _ = slice(*(int(x) if x else None for x in _SLICE.match(spec).groups())).indices(total)
    if stop - start < 1:
        raise PosthocError(f"--{what}={spec!r} is empty (the training split has {total} examples)")
    return Part("train", start, stop)


def check_disjoint(heldout: Part, fit: Part) -> None:
    if heldout.split == fit.split and heldout.start < fit.stop and fit.start < heldout.stop:
        raise PosthocError(f"the held-out part {heldout} overlaps the fit part {fit}: choose disjoint parts")


def part_dataset(name: str, part: Part, total: int, data_dir: str | None) -> Any:
    """The examples of `part` in evaluation mode (no augmentation), from its start to the
    end of its split: the caller stops after stop - start of them."""
    from uncertainty_baselines import datasets as ub_datasets
    if part.split == "validation":  # The dataset's own validation split, whole (see resolve_part).
        return ub_datasets.get(name, "validation", data_dir=data_dir)
    start, stop = part.start, part.stop
    if start == 0:
        percent = (total - stop + 0.5) / total if stop < total else 0.0
        return ub_datasets.get(name, "train", is_training=False, validation_percent=percent, data_dir=data_dir)
    return ub_datasets.get(name, "validation", validation_percent=(total - start + 0.5) / total, data_dir=data_dir)


# ----- features ------------------------------------------------------------------------------
def extract(forward: Any, dataset: Any, limit: int | None = None, digests: bool = False) -> dict[str, np.ndarray]:
    """Penultimate features, logits, ids, labels (and is_in_distribution, and a uint64
    digest of each example's preprocessed input) of the real rows of a dataset."""
    chunks: dict[str, list[np.ndarray]] = {}
    count = 0
    for batch in dataset:
        keep = batch["mask"].numpy() > 0 if "mask" in batch else slice(None)
        features, logits = forward(batch["features"])
        out = {"features": features.numpy()[keep], "logits": logits.numpy()[keep],
               "id": batch["id"].numpy()[keep], "labels": batch["labels"].numpy()[keep]}
        if "is_in_distribution" in batch:
            out["is_in_distribution"] = batch["is_in_distribution"].numpy()[keep]
        if digests:  # Of the preprocessed input: pixels, or token ids.
            inputs = batch["features"].numpy()[keep]
            out["digest"] = np.array([int.from_bytes(hashlib.sha256(x.tobytes()).digest()[:8], "little")
                                      for x in inputs], np.uint64)
        for k, v in out.items():
            chunks.setdefault(k, []).append(v)
        count += len(out["id"])
        if limit is not None and count >= limit:
            break
    result = {k: np.concatenate(v) for k, v in chunks.items()}
    return {k: v[:limit] for k, v in result.items()} if limit is not None else result


def weights_fingerprint(model: Any) -> str:
    return run_record.fingerprint(*(np.ascontiguousarray(w).tobytes() for w in model.get_weights()))


def load_eval_data(config: Any, *, with_corrupted: bool) -> Any:
    """The run's evaluation sets as its baseline loads them (experiment.ImageData): an image
    run's test, --ood_dataset (their OOD examples) and corrupted sets; a text run's
    in-domain test set and out-of-scope test set (OOD set `combined`, out-of-scope
    positive), no corrupted sets."""
    from uncertainty_baselines.training import experiment, text
    if is_text(config.dataset):
        return text.load_text_data(config, None, config.batch_size)
    return experiment.load_image_data(config, None, with_corrupted=with_corrupted)


def load_or_extract(run_path: pathlib.Path, record: Mapping[str, Any], output_dir: pathlib.Path, *,
                    data_dir: str | None, heldout: Part, fit: Part, total: int,
                    corruption_types: Sequence[str] | None, severities: Sequence[str] | None,
                    batch_size: int) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any], dict[str, Any]]:
    """Every set's features and logits ({name: arrays}), the cache facts, and timings."""
    import tensorflow as tf

    from uncertainty_baselines import models as ub_models
    run_flags = dict(record["flags"])
    config = types.SimpleNamespace(**{**run_flags, "data_dir": data_dir, "download_data": False,
                                      "eval_batch_size": batch_size})
    if corruption_types is not None:
        config.corruption_types = list(corruption_types)
    if severities is not None:
        config.severities = list(severities)
    with_corrupted = run_flags.get("corruptions_interval", 0) > 0 or corruption_types is not None
    model = ub_models.load(run_path)
    extractor, kernel, bias = feature_extractor(model)
    data = load_eval_data(config, with_corrupted=with_corrupted)  # tf.data pipelines: nothing read yet.
    sources = {name: (part_dataset(config.dataset, part, total, data_dir).load(batch_size=batch_size),
                      part.stop - part.start) for name, part in (("heldout", heldout), ("fit", fit))}
    sources["test"] = (data.test, None)
    for name, ds in data.ood.items():
        sources[predictions.set_name("ood", name)] = (ds, None)
    for key, ds in data.corrupted.items():
        sources[predictions.set_name("corrupted", key)] = (ds, None)
    names = list(sources)
    facts = {"run": str(run_path.resolve()), "weights": weights_fingerprint(model), "dataset": config.dataset,
             "data_dir": str(data_dir), "heldout": list(heldout), "fit": list(fit), "set_names": names}
    cache = output_dir / FEATURES_SUBDIR
    try:
        manifest = predictions.read_manifest(cache)
        if {k: manifest.get(k) for k in facts} == facts:
            logging.info("reusing the features in %s", cache)
            sets = {name: predictions.read_set(cache, name, manifest).arrays for name in names}
            return sets, facts, {"features_cached": True}
    except predictions.PredictionsError:
        pass

    forward = tf.function(lambda x: extractor(x, training=False))
    writer = predictions.PredictionsWriter(cache)
    sets, timing = {}, {}
    try:
        for name in names:
            ds, limit = sources[name]
            start = time.perf_counter()
            sets[name] = extract(forward, ds, limit, digests=name in ("heldout", "fit", "test"))
            timing[name] = time.perf_counter() - start
            n = len(sets[name]["id"])
            logging.info("%s: %d examples in %.1f s (%.0f/s)", name, n, timing[name], n / timing[name])
            if name.startswith("ood_"):  # Its OOD examples only: the test set's come first.
                sets[name] = predictions.with_in_distribution(sets["test"], sets[name], name)
            writer.add_set(name, sets[name], kind=name.split("_")[0])
        gap = np.abs(sets["test"]["features"].astype(np.float64) @ kernel + bias - sets["test"]["logits"]).max()
        if gap > 1e-3 * max(1.0, np.abs(sets["test"]["logits"]).max()):
            raise PosthocError(f"the logits are not features @ kernel + bias (max gap {gap:.3g})")
        writer.commit(**facts)
    except BaseException:
        writer.abort()
        raise
    return sets, facts, {"features_cached": False, "extract_s": timing}


def drop_test_duplicates(sets: dict[str, dict[str, np.ndarray]]) -> dict[str, int]:
    """Remove held-out and fit examples whose preprocessed input equals a test example's
    (by a 64-bit sha256 prefix); returns how many each part lost. PosthocError when a part
    loses every example."""
    test = sets["test"]["digest"]
    dropped = {}
    for name in ("heldout", "fit"):
        duplicate = np.isin(sets[name]["digest"], test)
        dropped[name] = int(duplicate.sum())
        if duplicate.all():
            raise PosthocError(f"every one of the {len(duplicate)} examples of the {name} part is also in the test "
                               "set (the same preprocessed input): choose another part")
        sets[name] = {k: v[~duplicate] for k, v in sets[name].items()}
    return dropped


# ----- evaluation ----------------------------------------------------------------------------
def evaluate_probs(probs_of: Any, sets: Mapping[str, Mapping[str, np.ndarray]], num_classes: int) -> dict[str, float]:
    """The run's flat metrics of a predictive `probs_of(set name) -> [N, K]` over test, OOD
    (1 - max probability; and, as training.evaluation.evaluate does, the classification
    metrics of an OOD set whose every example has a class: CLINC's combined test set) and
    corrupted sets."""
    from uncertainty_baselines.training import evaluation
    clean = evaluation.classification_results({"probs": probs_of("test"), "labels": sets["test"]["labels"]},
                                              num_classes)
    ood, corrupted = {}, {}
    for name, arrays in sets.items():
        if name.startswith("ood_"):
            outputs = {"probs": probs_of(name), "is_in_distribution": arrays["is_in_distribution"]}
            ood[name[4:]] = evaluation.ood_results(outputs)["msp"]
            if np.all(arrays["labels"] >= 0):
                ood[name[4:]].update(evaluation.classification_results(
                    {"probs": outputs["probs"], "labels": arrays["labels"]}, num_classes))
        elif name.startswith("corrupted_"):
            corrupted[corruption_key(name)] = evaluation.classification_results(
                {"probs": probs_of(name), "labels": arrays["labels"]}, num_classes)
    return ub_metrics.flatten_results(clean, ood=ood, corrupted=corrupted or None)


def corruption_key(name: str) -> tuple[str, int]:
    stem, _, severity = name.removeprefix("corrupted_").rpartition("_")
    return stem, int(severity)


def evaluate_conformal(cp: ub_metrics.SplitConformal, probs_of: Any,
                       sets: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, float]:
    """Coverage and mean set size on test and each corrupted set, set size on OOD examples."""
    clean = cp.result(probs_of("test"), sets["test"]["labels"])
    ood, corrupted = {}, {}
    for name, arrays in sets.items():
        if name.startswith("ood_"):
            outside = arrays["is_in_distribution"] == 0
            ood[name[4:]] = {"set_size": ub_metrics.set_size(cp.sets(probs_of(name)[outside]))}
        elif name.startswith("corrupted_"):
            corrupted[corruption_key(name)] = cp.result(probs_of(name), arrays["labels"])
    return ub_metrics.flatten_results(clean, ood=ood, corrupted=corrupted or None)


def evaluate_density(gda: density.ClassConditionalGaussians, sets: Mapping[str, Mapping[str, np.ndarray]]
                     ) -> dict[str, float]:
    ood = {}
    for name, arrays in sets.items():
        if name.startswith("ood_"):
            m = ub_metrics.OODMetrics()
            m.add_batch(gda.ood_score(arrays["features"]), is_ood=arrays["is_in_distribution"] == 0)
            ood[name[4:]] = m.result()
    return {f"ood/{name}_{k}": v for name, result in ood.items() for k, v in result.items()}


def apply_methods(sets: Mapping[str, Mapping[str, np.ndarray]], kernel: np.ndarray, bias: np.ndarray, *,
                  methods: Sequence[str], coverage: float, num_train_examples: int, predictive: str,
                  samples: int, seed: int) -> tuple[dict[str, float], dict[str, Any], dict[str, float]]:
    """Fit every method on sets['heldout'] (and sets['fit']) and evaluate it on the others:
    (flat metrics with method prefixes, fitted parameters, seconds per method)."""
    num_classes = kernel.shape[1]
    evaluated = {k: v for k, v in sets.items() if k not in ("heldout", "fit")}
    held = sets["heldout"]
    metrics, params, seconds = {}, {}, {}

    def raw_probs(name: str) -> np.ndarray:
        return special.softmax(np.asarray(sets[name]["logits"], np.float64), axis=1)

    def add(prefix: str, flat: Mapping[str, float]) -> None:
        metrics.update({f"{prefix}/{k}": float(v) for k, v in flat.items()})

    start = time.perf_counter()
    add("raw", evaluate_probs(raw_probs, evaluated, num_classes))
    seconds["raw"] = time.perf_counter() - start
    for method in methods:
        start = time.perf_counter()
        if method == "temperature":
            try:
                t = ub_metrics.fit_temperature(held["logits"], held["labels"])
            except ValueError as e:  # A temperature at the edge of its range: nothing to calibrate.
                raise PosthocError(f"temperature scaling: {e} (held-out accuracy "
                                   f"{np.mean(held['logits'].argmax(1) == held['labels']):.4f}); leave temperature "
                                   "out of --methods for this run") from None
            params["temperature"] = {"temperature": t}
            add(method, evaluate_probs(lambda n: ub_metrics.apply_temperature(
                np.asarray(sets[n]["logits"], np.float64), t), evaluated, num_classes))
        elif method.startswith("conformal_"):
            cp = ub_metrics.SplitConformal(1.0 - coverage, method.removeprefix("conformal_"), seed=seed)
            cp.calibrate(raw_probs("heldout"), held["labels"])
            params[method] = {"threshold": cp.threshold, "alpha": cp.alpha, "lam": cp.lam, "k_reg": cp.k_reg,
                              "calibrated_on": "raw softmax"}
            add(method, evaluate_conformal(cp, raw_probs, evaluated))
        elif method.startswith("laplace_"):
            la = laplace.LastLayerLaplace(kernel, bias, method.removeprefix("laplace_"))
            la.fit(sets["fit"]["features"], num_train_examples=num_train_examples)
            tau, nll = la.select_prior_precision(held["features"], held["labels"], method=predictive,
                                                 num_samples=samples, seed=seed)
            edge = tau in (min(nll), max(nll))
            params[method] = {"prior_precision": tau, "heldout_nll": nll[tau], "at_grid_edge": edge,
                              "predictive": predictive, "curvature_scale": la.scale}
            add(method, evaluate_probs(lambda n: la.predictive(sets[n]["features"], predictive, samples, seed),
                                       evaluated, num_classes))
        elif method == "ddu":
            gda, classes = fit_class_gaussians(sets["fit"])
            params["ddu"] = {"max_jitter": max(gda.jitters), "num_classes_fit": classes}
            add(method, evaluate_density(gda, evaluated))
        seconds[method] = time.perf_counter() - start
    return metrics, params, seconds


def fit_class_gaussians(fit: Mapping[str, np.ndarray]) -> tuple[density.ClassConditionalGaussians, int]:
    """The class Gaussians of the classes the fit part has (a class no training example
    has, CLINC's out-of-scope, is left out of the mixture) and their number."""
    classes, labels, counts = np.unique(fit["labels"], return_inverse=True, return_counts=True)
    if np.any(counts < 2):
        raise PosthocError(f"--fit part: classes {classes[counts < 2].tolist()} have a single example; the class "
                           "Gaussians need at least 2 of every class the fit part has: give a larger fit part")
    return density.ClassConditionalGaussians().fit(fit["features"], labels, len(classes)), len(classes)


# ----- report --------------------------------------------------------------------------------
def results_table(metrics: Mapping[str, float], methods: Sequence[str]) -> str:
    """A Markdown table: one row per method (raw first), the headline columns."""
    ood = sorted({k.split("/")[2].removesuffix("_auroc") for k in metrics
                  if k.startswith("raw/ood/") and k.endswith("_auroc")})
    columns = [("acc", "test/accuracy"), ("NLL", "test/negative_log_likelihood"), ("ECE", "test/ece"),
               ("Brier", "test/brier"), ("corr. acc", "test/accuracy_mean_corrupted"),
               ("corr. NLL", "test/negative_log_likelihood_mean_corrupted"), ("corr. ECE", "test/ece_mean_corrupted")]
    columns += [(f"OOD AUROC ({name})", f"ood/{name}_auroc") for name in ood]
    columns += [("coverage", "test/coverage"), ("set size", "test/set_size"),
                ("corr. coverage", "test/coverage_mean_corrupted"), ("corr. set size", "test/set_size_mean_corrupted")]
    columns = [(h, k) for h, k in columns if any(f"{m}/{k}" in metrics for m in ("raw", *methods))]
    lines = ["| method | " + " | ".join(h for h, _ in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for method in ("raw", *methods):
        cells = [metrics.get(f"{method}/{k}") for _, k in columns]
        lines.append(f"| {method} | " + " | ".join("" if c is None else f"{c:.4f}" for c in cells) + " |")
    return "\n".join(lines)


def flag_errors(config: Any) -> list[str]:
    """Messages for invalid flags of `config` (empty when valid)."""
    errors = []
    if not config.run:
        errors.append("--run is required (a finished run directory or release bundle)")
    if not config.output_dir:
        errors.append("--output_dir is required")
    if not (isinstance(config.coverage, float) and 0.0 < config.coverage < 1.0):
        errors.append(f"--coverage must lie in (0, 1) (exclusive), got {config.coverage}")
    unknown = [m for m in config.methods if m not in METHODS]
    if unknown or not config.methods:
        errors.append(f"--methods: unknown {unknown or 'none given'}; valid: {list(METHODS)}")
    for what in ("heldout", "fit"):
        try:
            check_spec(getattr(config, what), what)
        except PosthocError as e:
            errors.append(str(e))
    if config.batch_size < 1 or config.laplace_samples < 1:
        errors.append("--batch_size and --laplace_samples must be >= 1")
    if config.run and config.output_dir:
        run, out = pathlib.Path(config.run).resolve(), pathlib.Path(config.output_dir).resolve()
        if out == run or out.is_relative_to(run):
            errors.append(f"--output_dir {out} is inside the run {run}: the evaluated run is read only")
    return errors


def run_posthoc(config: Any) -> dict[str, Any]:
    """The whole command for flag values `config` (attributes FLAG_NAMES); returns what
    posthoc.json holds. Raises app.UsageError on invalid flags, PosthocError on a run or
    held-out part it cannot take."""
    started = time.time()
    errors = flag_errors(config)
    if errors:
        raise app.UsageError("invalid flags:\n  " + "\n  ".join(errors))
    run_path, output_dir = pathlib.Path(config.run), pathlib.Path(config.output_dir)
    record = read_run(run_path)
    run_flags = record["flags"]
    data_dir = config.data_dir or run_flags.get("data_dir") or os.environ.get("UB_DATA_DIR")
    dataset, text_run = run_flags["dataset"], is_text(run_flags["dataset"])
    if text_run and (config.corruption_types or config.severities):
        raise PosthocError(f"--corruption_types and --severities are for image runs: {dataset} has no corrupted sets")
    total = dataset_size(dataset, "train", data_dir)
    trained = run_flags.get("train_examples") or total
    sizes = {"total": total, "trained": trained, "validation_size": dataset_size(dataset, "validation", data_dir),
             "fit_limit": None if text_run else FIT_EXAMPLES}  # A text set's training split is ordered by class.
    heldout = resolve_part(config.heldout, what="heldout", **sizes)
    fit = resolve_part(config.fit, what="fit", **sizes)
    check_disjoint(heldout, fit)
    with lock.FolderLock(output_dir):
        sets, facts, timing = load_or_extract(
            run_path, record, output_dir, data_dir=data_dir, heldout=heldout, fit=fit, total=total,
            corruption_types=config.corruption_types, severities=config.severities, batch_size=config.batch_size)
        dropped = drop_test_duplicates(sets)
        from uncertainty_baselines import models as ub_models
        _, kernel, bias = feature_extractor(ub_models.load(run_path))
        metrics, params, seconds = apply_methods(
            sets, kernel, bias, methods=config.methods, coverage=config.coverage, num_train_examples=trained,
            predictive=config.laplace_predictive, samples=config.laplace_samples, seed=config.seed)
        from uncertainty_baselines.training import evaluation
        held = sets["heldout"]
        held_raw = evaluation.classification_results(  # How the held-out part compares with the test set.
            {"probs": special.softmax(held["logits"].astype(np.float64), axis=1), "labels": held["labels"]},
            kernel.shape[1])
        run_accuracy, raw_accuracy = record["metrics"]["test/accuracy"], metrics["raw/test/accuracy"]
        if abs(run_accuracy - raw_accuracy) > 1e-9:
            logging.warning("the recomputed test accuracy %.6f differs from the run's %.6f: other data or "
                            "preprocessing?", raw_accuracy, run_accuracy)
        result = {
            "run": str(run_path), "run_method": record.get("method"), "model": record.get("model"),
            "run_test_accuracy": run_accuracy, "dataset": run_flags["dataset"], "data_dir": data_dir,
            "heldout": {"spec": config.heldout, "split": heldout.split, "start": heldout.start, "stop": heldout.stop,
                        "num_examples": len(sets["heldout"]["id"]), "test_duplicates_dropped": dropped["heldout"],
                        "seen_in_training": heldout.split == "train" and heldout.start < trained,
                        **{f"raw_{k}": held_raw[k] for k in ("accuracy", "negative_log_likelihood", "ece")}},
            "fit": {"spec": config.fit, "split": fit.split, "start": fit.start, "stop": fit.stop,
                    "num_examples": len(sets["fit"]["id"]), "test_duplicates_dropped": dropped["fit"]},
            "num_train_examples": trained, "coverage": config.coverage, "methods": list(config.methods),
            "parameters": params, "metrics": metrics,
            "timing_s": {**timing, "methods": seconds, "total": time.time() - started},
            "weights": facts["weights"], "command": run_record.command_line(), "git": run_record.git_commit(),
            "hardware": run_record.hardware(), "packages": run_record.package_versions(),
        }
        run_record.write_json_atomic(output_dir / RESULT_FILE, _finite(result))
    print(results_table(metrics, config.methods))
    print(f"\nparameters: {params}\nwritten: {output_dir / RESULT_FILE}")
    return result


def dataset_size(name: str, split: str, data_dir: str | None) -> int:
    """Examples in a split of the dataset as prepared; 0 for a validation split it does not
    have (CLINC has one of its own; the image sets only a carve-out of train)."""
    from uncertainty_baselines import datasets as ub_datasets
    try:
        return ub_datasets.get(name, split, data_dir=data_dir).num_examples
    except ValueError:
        if split != "validation":
            raise
        return 0


def _finite(obj: Any) -> Any:
    """JSON-safe: NaN and infinities (an infinite conformal threshold) as null."""
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    try:
        run_posthoc(types.SimpleNamespace(**{name: FLAGS[name].value for name in FLAG_NAMES}))
    except (PosthocError, lock.FolderLockedError) as e:
        sys.exit(f"refused: {e}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
