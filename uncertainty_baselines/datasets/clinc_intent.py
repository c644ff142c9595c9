"""CLINC150 intent classification with out-of-scope (OOS) queries (Larson et al. 2019).

Read from the `clinc_intent` TFDS-format data written by
`python -m uncertainty_baselines.datasets.prepare clinc_intent --source data_full.json
--data_dir DIR`, which WordPiece-tokenises every query to 32 tokens ([CLS] ... [SEP], zero
padded) with the vocabulary given there (default: MiniLM's uncased BERT vocabulary).

Labels: the 150 intents sorted alphabetically are 0..149 and out-of-scope is
`OOS_LABEL` = 150, so `num_classes` = 151 in every mode. Elements: `features` = int32 [32]
`input_ids`, plus int32 [32] `input_mask` and `segment_ids` (BERT's other two inputs), and
`is_in_distribution` (int32: 1 for an intent, 0 for out-of-scope), so that the 'all' mode's
test split is an OOD evaluation set as `ub.datasets.ood` builds them (out-of-scope positive),
whose labels are nonetheless all classes of the model.

Modes (`data_mode`): 'in_domain' (train / validation / test = 15,000 / 3,000 / 4,500),
'out_of_scope' (100 / 100 / 1,000) and 'all' (in-domain followed by out-of-scope).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import tensorflow as tf

from uncertainty_baselines.datasets import local_builders
from uncertainty_baselines.datasets.base import TfdsDataset, prepare_command

OOS_LABEL = local_builders.CLINC_NUM_INTENTS  # 150: after the intents 0..149.
NUM_CLASSES = local_builders.CLINC_NUM_INTENTS + 1
DATA_MODES = ("in_domain", "out_of_scope", "all")
_OOS_SUFFIX = "_oos"


class ClincIntentDataset(TfdsDataset):
    """CLINC150 ("full" version) tokenised to BERT inputs of length 32."""

    def __init__(self, *, split: str, data_mode: str = "in_domain",
                 vocab_file: str | os.PathLike | None = None, **kwargs: Any):
        """Args:
          split: 'train', 'validation' or 'test'.
          data_mode: 'in_domain', 'out_of_scope' or 'all'.
          vocab_file: the WordPiece vocabulary the model expects. The data was tokenised
            when it was prepared; if given, it must be the same file (checked by SHA-256),
            else ValueError naming the prepare command. None accepts the prepared data's.
          **kwargs: BaseDataset / TfdsDataset arguments (seed, data_dir, ...).
        """
        if data_mode not in DATA_MODES:
            raise ValueError(f"clinc_intent: unknown data_mode {data_mode!r}; valid modes: "
                             f"{list(DATA_MODES)}")
        self.data_mode = data_mode
        splits = ("train", "validation", "test")
        # The out-of-scope TFDS splits are read as parts of ours (see `_parts`).
        super().__init__(name="clinc_intent", tfds_name="clinc_intent", num_classes=NUM_CLASSES,
                         split=split, raw_splits=splits,
                         tfds_split_names={s + _OOS_SUFFIX: s + _OOS_SUFFIX for s in splits},
                         **kwargs)
        if vocab_file is not None:
            self._check_vocab(vocab_file)

    def _check_vocab(self, vocab_file: str | os.PathLike) -> None:
        from uncertainty_baselines.datasets.prepare import file_sha256
        prepared = self._builder.info.metadata.get("vocab_sha256")
        given = file_sha256(vocab_file)
        if prepared != given:
            raise ValueError(
                f"clinc_intent in {self.data_dir} was tokenised with another vocabulary "
                f"(sha256 {prepared}) than vocab_file {vocab_file} (sha256 {given}); re-prepare "
                f"it: `{prepare_command('clinc_intent', self.data_dir)} --vocab_file {vocab_file} "
                "--overwrite`")

    def _parts(self, split: str) -> list[str]:
        """The TFDS splits that make up `split` in this mode, in order."""
        return {"in_domain": [split], "out_of_scope": [split + _OOS_SUFFIX],
                "all": [split, split + _OOS_SUFFIX]}[self.data_mode]

    def _split_sizes(self) -> Mapping[str, int]:
        tfds_sizes = super()._split_sizes()
        return {split: sum(tfds_sizes[part] for part in self._parts(split))
                for split in ("train", "validation", "test")}

    def _read(self, split: str, start: int, stop: int) -> tf.data.Dataset:
        """Examples [start, stop) of the mode's parts laid end to end."""
        tfds_sizes = super()._split_sizes()
        pieces, offset = [], 0
        for part in self._parts(split):
            lo, hi = max(start - offset, 0), min(stop - offset, tfds_sizes[part])
            if lo < hi:
                pieces.append(super()._read(part, lo, hi))
            offset += tfds_sizes[part]
        dataset = pieces[0]
        for piece in pieces[1:]:
            dataset = dataset.concatenate(piece)
        return dataset

    def _preprocess(self, example: dict[str, tf.Tensor], seed: tf.Tensor | None) -> dict[str, tf.Tensor]:
        del seed  # No augmentation of text.
        label = tf.cast(example["label"], tf.int32)
        return {"features": example["input_ids"],
                "input_mask": example["input_mask"],
                "segment_ids": example["segment_ids"],
                "labels": label,
                "is_in_distribution": tf.cast(label != OOS_LABEL, tf.int32)}
