"""What every baseline shares, so each script reads as its method (TensorFlow-specific).

The framework-free run-directory plumbing (checkpoints, run record, summaries) is in
`uncertainty_baselines.runs`.

Modules (import the one you need, e.g. ``from uncertainty_baselines.training import loop``):
  method        the seams a baseline plugs in (Method), each defaulting to the deterministic one
  experiment    the one run: validate, set up, train with resume, evaluate, record; a Task
                per dataset family (flag checks, data, optimizer), IMAGE_TASK by default
  text          the text Task (CLINC150 intents with out-of-scope detection, BERT, AdamW)
  imagenet      the ImageNet Task (ResNet-50 reference defaults, --image_size, --shifted_datasets, mCE)
  method_flags  the MC dropout, BatchEnsemble and SNGP flags shared by the CIFAR and ImageNet scripts
  precision     --mixed_precision: bfloat16 on CPU/TPU, float16 + loss scaling on GPU, float32 logits
  flags         absl flags common to the baselines -> a plain namespace, validated first
  schedules     LR warm-up + piecewise decay at fractions of the budget; Nesterov SGD; BERT's
                warm-up + linear decay and AdamW
  distribution  tf.distribute strategy (cpu, mirrored, multi_worker from TF_CONFIG, tpu), CPU
                splitting, synchronised BN
  loop          the custom distributed train step (several steps per call) and prediction
  evaluation    clean / OOD / corrupted evaluation with ub.metrics; data fingerprint
  stacked       M independent member networks trained / predicted in one compiled step
  uci_protocol  the UCI Gaussian-members protocol (selection on a carve-out, metrics over splits)
  uci_flags     the UCI scripts' flags and the start of their runs
"""
