"""What every baseline shares, so each script reads as its method (TensorFlow-specific).

The framework-free run-directory plumbing (checkpoints, run record, summaries) is in
`uncertainty_baselines.runs`.

Modules (import the one you need, e.g. ``from uncertainty_baselines.training import loop``):
  flags         absl flags common to the image baselines, validated before any work
  schedules     LR warm-up + piecewise decay at fractions of the budget; Nesterov SGD
  distribution  tf.distribute strategy (cpu, mirrored, tpu), CPU splitting, synchronised BN
  loop          the custom distributed train step (several steps per call) and prediction
  evaluation    clean / OOD / corrupted evaluation with ub.metrics; data fingerprint
  experiment    the shared epoch loop: resume, train, evaluate, checkpoint, NaN stop
  stacked       M independent member networks trained / predicted in one compiled step
"""
