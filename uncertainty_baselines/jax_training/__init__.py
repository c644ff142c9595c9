"""JAX training for the suite's baselines: Flax models, optax, ml_collections configs, data
parallelism with jax.sharding, over the framework-free core (`ub.datasets` as NumPy,
`ub.metrics`, `runs/` checkpoints, lifecycle and summaries). Layer 3, beside the TensorFlow
`training/` package, which it never imports.

Modules (import them directly; nothing is imported here, so `import uncertainty_baselines`
stays free of JAX):
  vit           ViT in Flax with big_vision's parameter names; BatchEnsemble variant
  config        get_config() files and --config.<field>= overrides, checked with clear errors
  data          ub.datasets as NumPy global batches (training stream, padded-and-masked evaluation)
  loop          the jitted data-parallel train / predict steps (jax.sharding mesh) and the host loop
  evaluation    streaming ub.metrics over masked batches, the suite's flat metric names
  optim         optax optimizers and schedules from a config; per-parameter LR multipliers
  checkpoints   pytrees <-> runs.checkpoint (.npz by key path + sha256 manifest)
  pretrained    big_vision .npz ViT weights into a model (shape checks, posemb resampling)
  method        Method: what a baseline script states (name, model, validation, LR multipliers)
  experiment    run(config, method, ...): the run lifecycle; main(method) for scripts
"""
