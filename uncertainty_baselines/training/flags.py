"""absl flags shared by the baselines of the shared run (image and text), and their validation.

An image baseline script calls `define_image_flags()` at import and adds its own method
flags; `image_config(FLAGS, method_flags)` turns them into a plain namespace for the
library, and `validate_image_flags` checks it before any data is read or anything is
written. `define_run_flags` and `run_flag_errors` are the part every trained baseline
shares (the text baselines add theirs in `training.text`); `define_ensemble_flags` and
`ensemble_errors` those of an ensemble of finished runs.
"""
from __future__ import annotations

import os
import types
from typing import Any, Iterable, Sequence

from absl import flags

from uncertainty_baselines.models.wide_resnet import SHORTCUT_INPUTS
from uncertainty_baselines.training import distribution
from uncertainty_baselines.training.distribution import STRATEGIES
from uncertainty_baselines.training.schedules import SCHEDULES

# Flags that do not change the result: a restart may change them and still resume.
RESULT_NEUTRAL_FLAGS = ("output_dir", "overwrite", "data_dir", "download_data", "eval_only",
                        "checkpoint_dir", "keep_checkpoints", "steps_per_loop", "log_interval_s", "save_predictions",
                        "tpu", "peer_timeout_s")


class InvalidFlagsError(ValueError):
    """One or more flags are out of their domain; the message lists every one."""


def define_run_flags(*, dataset: str, train_epochs: int, batch_size: int) -> None:
    """The flags of every baseline trained by the shared run: data, seed, batch, epochs,
    output, checkpoints, hardware; the keyword arguments set a baseline's defaults."""
    flags.DEFINE_string("dataset", dataset, "Dataset name of the ub.datasets registry "
                        "(images: cifar10, cifar100, fashion_mnist, mnist, ...; text: clinc_intent).")
    flags.DEFINE_string("data_dir", None, "TFDS data directory (default $UB_DATA_DIR, else TFDS's).")
    flags.DEFINE_integer("train_examples", None, "Train on only the first N training examples. "
                         "For smoke tests and demos only; evaluation still covers the whole test set.")
    flags.DEFINE_integer("seed", 42, "Seed of initialisation, data order and augmentation.")
    flags.DEFINE_integer("batch_size", batch_size, "GLOBAL batch size (summed over replicas); "
                         "must be divisible by the number of replicas.")
    flags.DEFINE_integer("eval_batch_size", None, "Global evaluation batch size (default batch_size).")
    flags.DEFINE_integer("train_epochs", train_epochs, "Number of training epochs.")
    flags.DEFINE_string("output_dir", None, "Run directory: checkpoints, summaries, metrics.jsonl, run.json.")
    flags.DEFINE_bool("overwrite", False, "Delete an output_dir holding a run with other flags.")
    flags.DEFINE_integer("checkpoint_interval", 1, "Save a checkpoint every N epochs (and at the end).")
    flags.DEFINE_integer("keep_checkpoints", 3, "Number of most recent checkpoints kept.")
    flags.DEFINE_bool("eval_only", False, "Only evaluate the latest checkpoint of --checkpoint_dir.")
    flags.DEFINE_string("checkpoint_dir", None, "Run directory or release bundle to evaluate with --eval_only.")
    flags.DEFINE_bool("save_predictions", False, "Write the final evaluation's per-example logits (member axis "
                      "kept), ids and labels of every evaluated set (test, each OOD and corrupted set) to "
                      "<output_dir>/predictions/: .npz files (no pickle) with a sha256 manifest "
                      "(uncertainty_baselines/runs/predictions.py).")
    flags.DEFINE_enum("strategy", "cpu", STRATEGIES, "cpu: one device; mirrored: MirroredStrategy "
                      "over local GPUs, else CPUs (batch-norm statistics are then synchronised, i.e. "
                      "taken over the global batch); multi_worker: MultiWorkerMirroredStrategy over "
                      "the processes of the TF_CONFIG cluster (one per machine; the chief writes, "
                      "docs: baselines/imagenet/README.md); tpu: TPUStrategy.")
    flags.DEFINE_integer("num_cores", None, "Replicas for --strategy=mirrored (default: all local "
                         "devices). Without GPUs the CPU is split into this many logical devices.")
    flags.DEFINE_string("tpu", None, "TPU address for --strategy=tpu ('' for local).")
    flags.DEFINE_float("peer_timeout_s", 300.0, "--strategy=multi_worker: seconds to wait for every "
                       "peer at the start, and for any collective (a killed worker fails the others).")
    flags.DEFINE_bool("mixed_precision", False, "bfloat16 compute (float32 variables, logits and loss) on "
                      "CPU/TPU; float16 with dynamic loss scaling on GPU (training/precision.py).")
    flags.DEFINE_integer("steps_per_loop", 50, "Training steps per tf.function call (speed only).")
    flags.DEFINE_float("log_interval_s", 30.0, "Seconds between progress lines.")


def define_image_flags(*, dataset: str = "cifar10", train_epochs: int = 200, batch_size: int = 128,
                       base_learning_rate: float = 0.1, l2: float = 2e-4,
                       lr_decay_epochs: tuple[float, ...] = (0.3, 0.6, 0.8),
                       ood_dataset: tuple[str, ...] = ("cifar100", "svhn_cropped"),
                       lr_warmup_epochs: float = 1.0, lr_decay_ratio: float = 0.2) -> None:
    """Define the run flags and the image ones; the keyword arguments set the defaults a baseline needs."""
    define_run_flags(dataset=dataset, train_epochs=train_epochs, batch_size=batch_size)
    flags.DEFINE_bool("download_data", False, "Let TFDS download missing data (needs internet).")
    flags.DEFINE_integer("crop_padding", None, "Zero padding (pixels) before the random crop of the "
                         "training augmentation, for datasets that pad and crop (CIFAR); default the "
                         "dataset's own (CIFAR: 4, the reference). Less fits better in a few epochs "
                         "(baselines/cifar/README.md).")
    # Optimisation.
    flags.DEFINE_float("base_learning_rate", base_learning_rate,
                       "Learning rate per 128 examples; the peak LR is this x batch_size / 128.")
    flags.DEFINE_enum("lr_schedule", "step", SCHEDULES, "step: the reference warm-up + x"
                      "--lr_decay_ratio at --lr_decay_epochs; cosine / linear: warm-up + cosine / linear "
                      "decay to 0.")
    flags.DEFINE_float("lr_warmup_epochs", lr_warmup_epochs, "Epochs of linear learning-rate warm-up.")
    flags.DEFINE_list("lr_decay_epochs", [str(f) for f in lr_decay_epochs],
                      "Where the LR decays, as fractions of train_epochs (reference 60/120/160 of 200).")
    flags.DEFINE_float("lr_decay_ratio", lr_decay_ratio, "Factor applied to the LR at each decay.")
    flags.DEFINE_float("momentum", 0.9, "Nesterov momentum.")
    flags.DEFINE_float("l2", l2, "L2 coefficient on all weights, added to the loss (not decoupled).")
    # Evaluation.
    flags.DEFINE_bool("eval_on_ood", False, "Also report OOD detection against --ood_dataset.")
    flags.DEFINE_list("ood_dataset", list(ood_dataset), "OOD datasets (registry names) to detect.")
    flags.DEFINE_integer("corruptions_interval", 0, "Evaluate the corrupted test sets every N "
                         "epochs and at the end; 0 never.")
    flags.DEFINE_list("corruption_types", [], "Corruption types to evaluate (default: all 15).")
    flags.DEFINE_list("severities", ["1", "2", "3", "4", "5"], "Corruption severities to evaluate.")


ENSEMBLE_FLAGS = ("run_dirs", "ensemble_size")
# Flags that change what a run evaluates, not what it trains.
EVALUATION_FLAGS = ("eval_on_ood", "ood_dataset", "corruptions_interval", "corruption_types", "severities",
                    "eval_batch_size", "shifted_datasets")


# The flag of an ensemble script that can train its own members (`define_ensemble_flags`).
TRAIN_MISSING_MEMBERS = "train_missing_members"


def define_ensemble_flags(ensemble_size: int = 4, member_training: bool = False) -> None:
    """--run_dirs and --ensemble_size of an ensemble of finished runs; with `member_training`
    also --train_missing_members (the script then defines its members' training flags too)."""
    flags.DEFINE_list("run_dirs", [], "Finished deterministic runs, one per member.")
    flags.DEFINE_integer("ensemble_size", ensemble_size, "Members: the first --ensemble_size of --run_dirs.")
    if member_training:
        flags.DEFINE_bool(TRAIN_MISSING_MEMBERS, False,
                          "First train every --run_dirs entry that holds no finished run (a killed one resumes), "
                          "as deterministic.py would with these flags and seed --seed + its position.")


def ensemble_errors(config: Any) -> list[str]:
    """Messages for invalid --run_dirs / --ensemble_size (empty when valid)."""
    errors = []
    if config.ensemble_size < 1:
        errors.append(f"--ensemble_size must be >= 1, got {config.ensemble_size}")
    elif len(config.run_dirs) < config.ensemble_size:
        errors.append(f"--run_dirs names {len(config.run_dirs)} runs, fewer than --ensemble_size="
                      f"{config.ensemble_size}; name one directory per member (deterministic.py with other --seed "
                      "values trains them, or --train_missing_members where the script has it)")
    if getattr(config, "strategy", None) == "multi_worker":
        errors.append("--strategy=multi_worker is for training; an ensemble of finished runs is evaluated by one "
                      "process (--strategy=mirrored uses every local device)")
    if config.output_dir and any(_same_path(d, config.output_dir) for d in config.run_dirs):
        errors.append("--output_dir must not be one of the --run_dirs (it would overwrite that run's record)")
    return errors


# --l2_scope -> the `wide_resnet` l2_overrides it means (None: --l2 on every group).
L2_SCOPES = {"all": None, "kernels": {"bn": 0.0, "dense_bias": 0.0}}


def define_wide_resnet_flags(depth: int = 28, width: int = 10) -> None:
    """--depth and --width of the Wide ResNet backbone the CIFAR methods share."""
    flags.DEFINE_integer("depth", depth, "Wide ResNet depth (6n + 4).")
    flags.DEFINE_integer("width", width, "Wide ResNet width multiplier.")
    flags.DEFINE_enum("initializer", "he_normal", ["he_normal", "glorot_uniform"],
                      "Kernel initialiser: he_normal (the reference) or glorot_uniform (Keras' "
                      "default; trains faster on short budgets).")
    flags.DEFINE_enum("shortcut_input", "raw", list(SHORTCUT_INPUTS),
                      "What a 1x1 shortcut conv reads: raw (the block's input; the reference) or "
                      "activated (the block's first BN-ReLU; the WRN paper's code, trains faster on "
                      "short budgets).")
    flags.DEFINE_enum("l2_scope", "all", list(L2_SCOPES),
                      "What --l2 penalises: all (the reference: conv and dense kernels, batch-norm "
                      "scales and offsets, the head's bias) or kernels (conv and dense kernels only).")


WIDE_RESNET_FLAGS = ("depth", "width", "initializer", "shortcut_input", "l2_scope")


def wide_resnet_errors(config: Any) -> list[str]:
    """Messages for an invalid --depth / --width (empty when valid)."""
    if (config.depth - 4) % 6 or config.depth < 10 or config.width < 1:
        return [f"--depth must be 6n+4 >= 10 and --width >= 1, got {config.depth} and {config.width}"]
    return []


def at_least_one_errors(config: Any, *names: str) -> list[str]:
    """Messages for the named integer flags that are below 1 (ensemble sizes, sample counts)."""
    return [f"--{name} must be >= 1, got {getattr(config, name)}" for name in names if getattr(config, name) < 1]


def positive_errors(config: Any, *names: str) -> list[str]:
    """Messages for the named float flags that are not > 0 (bounds, scales, temperatures)."""
    return [f"--{name} must be > 0, got {getattr(config, name)}" for name in names if not getattr(config, name) > 0]


def wide_resnet_kwargs(config: Any, data: Any) -> dict[str, Any]:
    """The `wide_resnet` registry kwargs of a run: backbone flags, the data's shape and classes."""
    kwargs = {"input_shape": list(data.input_shape), "depth": config.depth, "width_multiplier": config.width,
              "num_classes": data.num_classes, "l2": config.l2, "seed": config.seed,
              "initializer": config.initializer}
    if L2_SCOPES[config.l2_scope] is not None:
        kwargs["l2_overrides"] = dict(L2_SCOPES[config.l2_scope])
    if config.shortcut_input != "raw":  # Recorded when not the default, as runs before the flag.
        kwargs["shortcut_input"] = config.shortcut_input
    return kwargs


def image_flag_values(values: Any, *method_flags: str) -> dict[str, Any]:
    """Values of every flag `define_image_flags` defines plus the named method flags."""
    names = [f.name for f in values.get_flags_for_module(__name__)] + list(method_flags)
    return {name: values[name].value for name in sorted(names)}


def flag_defaults(names: Iterable[str]) -> dict[str, Any]:
    """Defaults of the named flags this process's script defines (absl's FLAGS), so a run
    folder whose flags.json predates a flag can still resume (`lifecycle.start_run`): a flag
    added later must default to the earlier behaviour, and keep that default."""
    return {name: flags.FLAGS[name].default for name in names if name in flags.FLAGS}


def image_config(values: Any, method_flags: Sequence[str] = ()) -> types.SimpleNamespace:
    """The common and method flags of absl `values` as a plain namespace (what the library takes)."""
    return types.SimpleNamespace(**image_flag_values(values, *method_flags))


def num_replicas(strategy: str, num_cores: int | None) -> int | None:
    """Replicas a strategy will have, without creating it (None when only the TPU knows)."""
    if strategy == "cpu":
        return 1
    import tensorflow as tf
    if strategy == "mirrored":
        if num_cores is not None:
            return num_cores
        return len(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU"))
    if strategy == "multi_worker":  # Each worker's GPUs, else one CPU.
        try:
            workers = sum(len(v) for v in distribution.read_tf_config().cluster.values())
        except distribution.ClusterError:
            return None  # Reported by run_flag_errors.
        return workers * (len(tf.config.list_physical_devices("GPU")) or 1)  # (Leaves TF uninitialised.)
    return None


def validate_image_flags(values: Any, method_errors: Iterable[str] = ()) -> None:
    """Raise InvalidFlagsError listing every invalid common flag of `values` and `method_errors`."""
    raise_if_errors(values, [*method_errors, *image_flag_errors(values), *run_flag_errors(values)])


def raise_if_errors(values: Any, errors: Sequence[str]) -> None:
    """InvalidFlagsError listing `errors`; when there are none, the batch sizes that the
    replicas of --strategy do not divide."""
    errors = list(errors) or replica_errors(values)
    if errors:
        raise InvalidFlagsError("invalid flags:\n  " + "\n  ".join(errors))


def evaluates_corrupted(config: Any) -> bool:
    """Whether a run scores the corrupted test sets: every --corruptions_interval epochs when
    it trains; when it only evaluates (--eval_only, an ensemble of --run_dirs), whenever
    --corruption_types names some."""
    only_evaluates = config.eval_only or bool(getattr(config, "run_dirs", None))
    return config.corruptions_interval > 0 or (only_evaluates and bool(config.corruption_types))


def image_flag_errors(values: Any) -> list[str]:
    """Messages for the invalid image flags of `values` (empty when valid)."""
    from uncertainty_baselines import datasets
    errors = []

    def check(ok: bool, message: str) -> None:
        if not ok:
            errors.append(message)

    image_sets = [n for n in datasets.DATASETS if not n.startswith(("uci_", "clinc"))
                  and not n.endswith("_corrupted")]
    check(values.dataset in image_sets, f"--dataset={values.dataset!r} is unknown; valid: {image_sets}")
    if values.crop_padding is not None and values.dataset in image_sets:
        check(getattr(datasets.get_class(values.dataset), "CROP_PADDING", None) is not None,
              f"--crop_padding: {values.dataset} has no pad-and-crop augmentation (CIFAR has)")
        check(values.crop_padding >= 0, f"--crop_padding must be >= 0, got {values.crop_padding}")
    check(values.base_learning_rate > 0, f"--base_learning_rate must be > 0, got {values.base_learning_rate}")
    check(values.lr_warmup_epochs >= 0, f"--lr_warmup_epochs must be >= 0, got {values.lr_warmup_epochs}")
    check(values.lr_schedule == "step" or values.lr_warmup_epochs < values.train_epochs,
          f"--lr_warmup_epochs ({values.lr_warmup_epochs}) must be shorter than --train_epochs "
          f"({values.train_epochs}) with --lr_schedule={values.lr_schedule}")
    check(0 < values.lr_decay_ratio <= 1, f"--lr_decay_ratio must be in (0, 1], got {values.lr_decay_ratio}")
    check(0 <= values.momentum < 1, f"--momentum must be in [0, 1), got {values.momentum}")
    check(values.l2 >= 0, f"--l2 must be >= 0, got {values.l2}")
    try:
        fractions = [float(f) for f in values.lr_decay_epochs]
        check(all(0 < f <= 1 for f in fractions) and fractions == sorted(set(fractions)),
              f"--lr_decay_epochs must be increasing fractions in (0, 1], got {values.lr_decay_epochs}")
    except ValueError:
        errors.append(f"--lr_decay_epochs must be numbers, got {values.lr_decay_epochs}")
    check(values.corruptions_interval >= 0, f"--corruptions_interval must be >= 0, got {values.corruptions_interval}")
    check(evaluates_corrupted(values) or not values.corruption_types,
          "--corruption_types is evaluated only with --corruptions_interval > 0 (or by --eval_only and "
          "an ensemble of --run_dirs); add --corruptions_interval=N, or drop --corruption_types")
    if values.eval_on_ood:
        unknown = [n for n in values.ood_dataset if n not in datasets.DATASETS]
        check(bool(values.ood_dataset) and not unknown,
              f"--ood_dataset must list registry names; unknown: {unknown or 'none given'}")
        check(values.dataset not in values.ood_dataset, "--ood_dataset must not contain --dataset itself")
    if evaluates_corrupted(values):
        check(f"{values.dataset}_corrupted" in datasets.DATASETS,
              f"corrupted sets asked for but {values.dataset} has no corrupted test set "
              f"(available: {[n for n in datasets.DATASETS if n.endswith('_corrupted')]})")
        try:
            check(all(int(s) in range(1, 6) for s in values.severities) and bool(values.severities),
                  f"--severities must be in 1..5, got {values.severities}")
        except ValueError:
            errors.append(f"--severities must be integers 1..5, got {values.severities}")
    return errors


def run_flag_errors(values: Any) -> list[str]:
    """Messages for the invalid run flags of `values` (empty when valid), but for the
    batch sizes' divisibility by the replicas (`replica_errors`)."""
    errors = []

    def check(ok: bool, message: str) -> None:
        if not ok:
            errors.append(message)

    check(values.train_epochs >= 1, f"--train_epochs must be >= 1, got {values.train_epochs}")
    check(values.batch_size >= 1, f"--batch_size must be >= 1, got {values.batch_size}")
    check(values.eval_batch_size is None or values.eval_batch_size >= 1,
          f"--eval_batch_size must be >= 1, got {values.eval_batch_size}")
    check(values.train_examples is None or values.train_examples >= values.batch_size,
          f"--train_examples ({values.train_examples}) must be at least one batch ({values.batch_size})")
    check(values.checkpoint_interval >= 1, f"--checkpoint_interval must be >= 1, got {values.checkpoint_interval}")
    check(values.keep_checkpoints >= 1, f"--keep_checkpoints must be >= 1, got {values.keep_checkpoints}")
    check(values.steps_per_loop >= 1, f"--steps_per_loop must be >= 1, got {values.steps_per_loop}")
    check(bool(values.output_dir), "--output_dir is required")
    if values.eval_only:
        check(bool(values.checkpoint_dir), "--eval_only needs --checkpoint_dir (a run directory or a release bundle)")
        if values.checkpoint_dir and values.output_dir:
            check(not _same_path(values.checkpoint_dir, values.output_dir),
                  "--output_dir must not be the --checkpoint_dir that --eval_only evaluates "
                  "(it would overwrite the training run's run.json and metrics)")
    check(values.strategy != "mirrored" or values.num_cores is None or values.num_cores >= 1,
          f"--num_cores must be >= 1, got {values.num_cores}")
    if values.strategy == "multi_worker":
        try:
            distribution.read_tf_config()
        except distribution.ClusterError as e:
            errors.append(str(e))
    return errors


def replica_errors(values: Any) -> list[str]:
    """Messages for the global batch sizes the replicas of --strategy do not divide (the
    strategy is not created: checked against its device count)."""
    replicas = num_replicas(values.strategy, values.num_cores)
    return [f"--{name}={batch} is not divisible by the {replicas} replicas of --strategy={values.strategy}"
            for name in ("batch_size", "eval_batch_size")
            if replicas is not None and (batch := getattr(values, name)) is not None and batch % replicas]


def _same_path(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)
