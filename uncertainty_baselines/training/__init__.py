"""What every baseline shares, so each script reads as its method.

Modules (import the one you need, e.g. ``from uncertainty_baselines.training import checkpoint``):
  flags         absl flags common to the image baselines, validated before any work
  schedules     LR warm-up + piecewise decay at fractions of the budget; Nesterov SGD
  distribution  tf.distribute strategy (cpu, mirrored, tpu), CPU splitting, synchronised BN
  loop          the custom distributed train step (several steps per call) and prediction
  evaluation    clean / OOD / corrupted evaluation with ub.metrics; data fingerprint
  experiment    the shared epoch loop: resume, train, evaluate, checkpoint, NaN stop
  checkpoint    atomic checkpoints with sha256 manifests, fallback from a corrupt latest
  run_record    run.json: flags, versions, git commit, hardware, data fingerprint, metrics
  output_dir    refuse to mix two runs in one folder (resume with the same flags, or overwrite)
  progress      progress lines with rate and ETA
  stacked       M independent member networks trained / predicted in one compiled step
  summaries     TensorBoard scalars + metrics.jsonl (one JSON line per evaluation)
"""
