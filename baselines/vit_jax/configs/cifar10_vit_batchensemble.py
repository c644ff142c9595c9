r"""BatchEnsemble ViT trained from scratch on CIFAR-10 at a small CPU budget.

The deterministic config's ViT, optimizer and budget, with M = 3 members (the reference's
ViT BatchEnsemble size) in the MLP block of the last encoder layer and the head (the
reference puts them in several late layers; one keeps this row's cost at ~1.5x the
deterministic one on 2 CPU cores), random-sign fast-weight init (P(+1) = 0.5) and fast
weights at the full learning rate (the reference ViT fine-tuning default). The run of
README.md's table:

  flock /tmp/heavy.lock python baselines/vit_jax/batchensemble.py \
      --config=baselines/vit_jax/configs/cifar10_vit_batchensemble.py \
      --data_dir=/work/data --output_dir=/work/data/runs/vit_jax/batchensemble
"""
import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.method = "batchensemble"
    config.dataset = "cifar10"
    config.seed = 42
    config.train_examples = 0  # 0: the whole training split.
    config.batch_size = 128  # Global batch (distinct examples; each member sees all of them).
    config.eval_batch_size = 500
    config.train_epochs = 2
    config.num_devices = 0  # 0: every visible device.
    config.ood_datasets = ("mnist",)
    config.corruption_types = ("gaussian_noise", "defocus_blur", "contrast", "jpeg_compression", "fog")
    config.severities = (3,)
    config.corruptions_interval = 2
    config.checkpoint_interval = 1
    config.keep_checkpoints = 3
    config.log_interval_s = 30.0
    config.cache_eval = True
    config.model_init = ""  # A (deterministic or BatchEnsemble) big_vision .npz to fine-tune from.
    config.dont_load = ("head/.*",)

    config.optimizer = "adam"
    config.lr = ml_collections.ConfigDict({"base": 1e-3, "warmup_steps": 200, "decay_type": "cosine"})
    config.grad_clip_norm = 1.0
    config.fast_weight_lr_multiplier = 1.0

    config.model = ml_collections.ConfigDict()
    config.model.patch_size = (4, 4)
    config.model.width = 128
    config.model.depth = 4
    config.model.mlp_dim = 256
    config.model.num_heads = 4
    config.model.pool_type = "tok"
    config.model.dropout = 0.0
    config.model.ens_size = 3
    config.model.be_layers = (3,)
    config.model.random_sign_init = 0.5
    return config
