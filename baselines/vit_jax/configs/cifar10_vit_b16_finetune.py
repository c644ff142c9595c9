r"""The reference's setting: ViT-B/16 pretrained on ImageNet-21k, fine-tuned on CIFAR-10.

Needs the pretrained weights as a big_vision .npz (e.g. the vision_transformer release's
ViT-B_16.npz; nothing is downloaded) and accelerators: the reference fine-tunes at
384x384 (576 patches) with batch 512 for 10,000 steps on TPUs. Here the images keep their
32x32 CIFAR size (a 2x2 patch grid; the 14x14 (224 px) or 24x24 (384 px) position embedding is resampled
bilinearly), so this reproduces the recipe, not the reference's resolution:

  python baselines/vit_jax/deterministic.py \
      --config=baselines/vit_jax/configs/cifar10_vit_b16_finetune.py \
      --config.model_init=/path/to/ViT-B_16.npz \
      --data_dir=/work/data --output_dir=runs/vit_jax/b16_finetune
"""
import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.method = "deterministic"
    config.dataset = "cifar10"
    config.seed = 0
    config.train_examples = 0
    config.batch_size = 512
    config.eval_batch_size = 500
    config.train_epochs = 105  # ~10,000 steps of 512 (the reference's budget).
    config.num_devices = 0
    config.ood_datasets = ("cifar100", "svhn_cropped")
    config.corruption_types = ()
    config.severities = (3,)
    config.corruptions_interval = 0
    config.checkpoint_interval = 5
    config.keep_checkpoints = 3
    config.log_interval_s = 60.0
    config.cache_eval = True
    config.model_init = "/path/to/ViT-B_16.npz"  # Required: pass --config.model_init=PATH.
    config.dont_load = ("head/.*",)

    config.optimizer = "sgd"  # The reference: momentum 0.9, LR 0.003, 500 warm-up steps, cosine, clip 1.
    config.momentum = 0.9
    config.lr = ml_collections.ConfigDict({"base": 3e-3, "warmup_steps": 500, "decay_type": "cosine"})
    config.grad_clip_norm = 1.0

    config.model = ml_collections.ConfigDict()
    config.model.patch_size = (16, 16)
    config.model.width = 768
    config.model.depth = 12
    config.model.mlp_dim = 3072
    config.model.num_heads = 12
    config.model.pool_type = "tok"
    config.model.dropout = 0.0
    return config
