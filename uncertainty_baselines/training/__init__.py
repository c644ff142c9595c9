"""What every baseline shares, so each script reads as its method (TensorFlow-specific).

The framework-free run-directory plumbing (checkpoints, run record, summaries) is in
`uncertainty_baselines.runs`.

Modules (import the one you need, e.g. ``from uncertainty_baselines.training import loop``):
  method        the seams a baseline plugs in (Method), each defaulting to the deterministic one
  experiment    the one image run: validate, set up, train with resume, evaluate, record
  flags         absl flags common to the image baselines -> a plain namespace, validated first
  schedules     LR warm-up + piecewise decay at fractions of the budget; Nesterov SGD
  distribution  tf.distribute strategy (cpu, mirrored, tpu), CPU splitting, synchronised BN
  loop          the custom distributed train step (several steps per call) and prediction
  evaluation    clean / OOD / corrupted evaluation with ub.metrics; data fingerprint
  stacked       M independent member networks trained / predicted in one compiled step
  uci_protocol  the UCI Gaussian-members protocol (selection on a carve-out, metrics over splits)
  uci_flags     the UCI scripts' flags and the start of their runs
"""
