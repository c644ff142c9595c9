"""The flat metric names every baseline reports (docs/ARCHITECTURE.md, Metrics)."""
from __future__ import annotations

from collections.abc import Mapping

from uncertainty_baselines.metrics.corruption import aggregate_corrupted


def flatten_results(clean: Mapping[str, float],
                    ood: Mapping[str, Mapping[str, float]] | None = None,
                    corrupted: Mapping[tuple[str, int], Mapping[str, float]] | None = None,
                    split: str = "test") -> dict[str, float]:
    """One flat dict of floats with the reference key names.

    ``clean`` {'accuracy': ...} -> ``<split>/accuracy``; ``ood`` {name: {'auroc': ...}} ->
    ``ood/<name>_auroc``; ``corrupted`` {(type, severity): {'ece': ...}} ->
    ``<split>/ece_<type>_<severity>``, ``<split>/ece_<type>``,
    ``<split>/ece_mean_severity_<s>`` and ``<split>/ece_mean_corrupted`` (see
    :func:`~uncertainty_baselines.metrics.aggregate_corrupted`). ValueError if two inputs
    would produce the same key.
    """
    if not split or "/" in split:
        raise ValueError(f"split must be a non-empty name without '/', got {split!r}")
    entries = [(f"{split}/{name}", value) for name, value in clean.items()]
    for dataset, metrics in (ood or {}).items():
        entries += [(f"ood/{dataset}_{name}", value) for name, value in metrics.items()]
    if corrupted:
        entries += [(f"{split}/{name}", value)
                    for name, value in aggregate_corrupted(corrupted).items()]
    flat: dict[str, float] = {}
    for key, value in entries:
        if key in flat:
            raise ValueError(f"two results map to the key {key!r}")
        flat[key] = float(value)
    return flat
