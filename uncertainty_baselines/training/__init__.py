"""What every baseline shares, so each script reads as its method.

Modules (import the one you need, e.g. ``from uncertainty_baselines.training import checkpoint``):
  run_record   run.json: flags, versions, git commit, hardware, data fingerprint, metrics
  output_dir   refuse to mix two runs in one folder (resume with the same flags, or overwrite)
  progress     progress lines with rate and ETA
  summaries    TensorBoard scalars + metrics.jsonl (one JSON line per evaluation)
"""
