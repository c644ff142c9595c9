r"""Deterministic ViT trained from scratch on CIFAR-10 at a small CPU budget.

A ViT with 4x4 patches (64 tokens + class token), width 128, 4 layers, 4 heads, MLP 256,
Adam at 1e-3 (warm-up 200 steps, cosine to 0), gradient clipping 1.0, global batch 128,
2 epochs. The run of README.md's table:

  flock /tmp/heavy.lock python baselines/vit_jax/deterministic.py \
      --config=baselines/vit_jax/configs/cifar10_vit_deterministic.py \
      --data_dir=/work/data --output_dir=/work/data/runs/vit_jax/deterministic
"""
import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.method = "deterministic"
    config.dataset = "cifar10"
    config.seed = 42
    config.train_examples = 0  # 0: the whole training split.
    config.batch_size = 128  # Global batch, split over the devices.
    config.eval_batch_size = 500
    config.train_epochs = 2
    config.num_devices = 0  # 0: every visible device.
    config.ood_datasets = ("mnist",)
    config.corruption_types = ("gaussian_noise", "defocus_blur", "contrast", "jpeg_compression", "fog")
    config.severities = (3,)
    config.corruptions_interval = 2  # Epochs; the corrupted sets are also scored at the end.
    config.checkpoint_interval = 1
    config.keep_checkpoints = 3
    config.log_interval_s = 30.0
    config.cache_eval = True
    config.model_init = ""  # A big_vision .npz to fine-tune from; "" trains from scratch.
    config.dont_load = ("head/.*",)

    config.optimizer = "adam"
    config.lr = ml_collections.ConfigDict({"base": 1e-3, "warmup_steps": 200, "decay_type": "cosine"})
    config.grad_clip_norm = 1.0

    config.model = ml_collections.ConfigDict()
    config.model.patch_size = (4, 4)
    config.model.width = 128
    config.model.depth = 4
    config.model.mlp_dim = 256
    config.model.num_heads = 4
    config.model.pool_type = "tok"
    config.model.dropout = 0.0
    return config
