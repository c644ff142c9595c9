"""Framework-free plumbing of a run directory, which every other layer may import.

Modules (NumPy and the standard library only; TensorFlow is imported lazily where a
TensorBoard file is written):
  checkpoint    atomic checkpoints of NumPy arrays with sha256 manifests, fallback from a corrupt latest
  run_record    run.json: flags, versions, git commit, hardware, data fingerprint, metrics
  output_dir    refuse to mix two runs in one folder (resume with the same flags, or overwrite)
  summaries     metrics.jsonl (one JSON line per evaluation) and TensorBoard scalars
  progress      progress lines with rate and ETA
"""
