"""Framework-free plumbing of a run directory, which every other layer may import.

Modules (NumPy and the standard library only; TensorFlow is imported lazily where a
TensorBoard file is written):
  checkpoint    atomic checkpoints of NumPy arrays with sha256 manifests, fallback from a corrupt latest
  run_record    run.json: flags, versions, git commit, hardware, data fingerprint, metrics
  output_dir    refuse to mix two runs in one folder (resume with the same flags, or overwrite)
  lock          one live process per run folder (the holder named when another is refused)
  lifecycle     a run's start (folder checks, lock, flags.json) and finish (run.json)
  summaries     metrics.jsonl (one JSON line per evaluation) and TensorBoard scalars
  curves        curves.jsonl: reliability bins and ROC points, what the report draws
  predictions   per-example logits, ids and labels of the final evaluation (--save_predictions)
  bundle        release bundles: weights.npz, model.json, run.json, model card, manifest
  progress      progress lines with rate and ETA
"""
