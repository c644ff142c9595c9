"""Evaluation summaries: TensorBoard scalars and one JSON line of metrics per evaluation.

`metrics.jsonl` holds `{"step": s, "epoch": e, <flat metric keys>...}` per evaluation, in
order. On resume from step s the lines of later steps (written before a crash, but
belonging to work that will be redone) are removed, so the file never holds duplicates.
"""
from __future__ import annotations

import json
import math
import os
import pathlib
from typing import Any, Mapping

METRICS_FILE = "metrics.jsonl"


HEADLINE = ("test/accuracy", "test/negative_log_likelihood", "test/ece", "test/brier",
            "test/accuracy_mean_corrupted", "test/negative_log_likelihood_mean_corrupted",
            "test/ece_mean_corrupted", "train/ms_per_example", "test/ms_per_example")


def headline_metrics(metrics: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The metrics a results table shows, in order: accuracy, calibration, corrupted,
    cost, then each OOD set's AUROC, AUPR-out and accuracy; absent or null ones left out."""
    rows = [(k, metrics.get(k)) for k in HEADLINE]
    rows += sorted((k, v) for k, v in metrics.items()
                   if k.startswith("ood/") and k.endswith(("_auroc", "_aupr_out", "_accuracy")))
    return [(k, v) for k, v in rows if v is not None]


def results_table(metrics: Mapping[str, Any], num_params: int | None = None) -> str:
    """The final table: headline metrics (accuracy, NLL, ECE, corrupted, OOD, cost) if present."""
    rows = headline_metrics(metrics)
    if num_params is not None:
        rows.append(("num_params", num_params))
    width = max(len(k) for k, _ in rows)
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  ------"]
    lines += [f"{k:<{width}}  {v:.4f}" if isinstance(v, float) else f"{k:<{width}}  {v}" for k, v in rows]
    return "\n".join(lines)


def format_metrics(metrics: Mapping[str, Any], keys: tuple[str, ...] = (
        "train/loss", "train/accuracy", "test/accuracy", "test/negative_log_likelihood", "test/ece")) -> str:
    """One progress line's worth of metrics."""
    return ", ".join(f"{k}={metrics[k]:.4f}" for k in keys if metrics.get(k) is not None)


def read_metrics(output_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """All complete lines of `metrics.jsonl` (a torn last line from a crash is ignored)."""
    path = pathlib.Path(output_dir) / METRICS_FILE
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break  # Only the last line can be torn: lines are appended and fsynced in order.
    return records


def truncate_metrics(output_dir: str | os.PathLike, after_step: int) -> int:
    """Keep only records with step <= `after_step`; return how many were removed."""
    path = pathlib.Path(output_dir) / METRICS_FILE
    if not path.is_file():
        return 0
    lines = path.read_text().splitlines()
    kept = [json.dumps(r, sort_keys=True) for r in read_metrics(output_dir) if r["step"] <= after_step]
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text("".join(line + "\n" for line in kept))
    os.replace(tmp, path)
    return len(lines) - len(kept)


class SummaryWriter:
    """Writes each evaluation's flat metrics to TensorBoard and to `metrics.jsonl`."""

    def __init__(self, output_dir: str | os.PathLike, *, tensorboard: bool = True, files: bool = True):
        """`files=False` writes nothing and only returns the records (a non-chief worker)."""
        self.output_dir, self._files = pathlib.Path(output_dir), files
        if files:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        self._tb = None
        if tensorboard and files:
            import tensorflow as tf  # Deferred: JAX/torch-only users may skip TensorBoard.
            from tensorflow.core.framework import summary_pb2
            self._tf = tf
            self._tb = tf.summary.create_file_writer(str(self.output_dir / "summaries"))
            # What tf.summary.scalar writes, without needing the tensorboard package installed.
            self._scalar_metadata = summary_pb2.SummaryMetadata(
                plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))

    def write(self, step: int, metrics: Mapping[str, float], **context: Any) -> dict[str, Any]:
        """Append one record (step, `context` such as epoch, then metrics) and log scalars."""
        record = {"step": int(step), **context,
                  **{k: _finite_or_none(v) for k, v in metrics.items()}}
        if not self._files:
            return record
        with open(self.output_dir / METRICS_FILE, "a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if self._tb is not None:
            with self._tb.as_default(step=int(step)):
                for name, value in metrics.items():
                    self._tf.summary.write(name, self._tf.constant(float(value), self._tf.float32),
                                           metadata=self._scalar_metadata)
            self._tb.flush()
        return record

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def _finite_or_none(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
