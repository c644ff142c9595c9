r"""Deterministic Vision Transformer (Flax) on CIFAR-10/100, trained with optax.

The config file is the experiment (model, optimizer, budget, data); `--config.<field>=`
overrides any field. Outputs, metric names, resume and run record are the suite's (see
README.md here and docs/ARCHITECTURE.md).

  python baselines/vit_jax/deterministic.py \
      --config=baselines/vit_jax/configs/cifar10_vit_deterministic.py \
      --data_dir=/work/data --output_dir=runs/vit_jax_deterministic
"""
from uncertainty_baselines.jax_training import experiment
from uncertainty_baselines.jax_training.method import Method

DETERMINISTIC = Method("deterministic")

if __name__ == "__main__":
    experiment.main(DETERMINISTIC)
