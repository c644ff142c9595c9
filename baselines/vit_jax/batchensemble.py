r"""BatchEnsemble Vision Transformer (Flax; Wen, Tran & Ba 2020, the reference's ViT variant).

M members share every weight; the MLP blocks of the encoder layers in `model.be_layers` and
the head add per-member rank-1 fast weights and biases (`jax_training.vit`). The batch is
tiled M times before the first BatchEnsemble layer, so each member trains on every
example; the loss is the members' mean cross-entropy, the prediction their mean softmax.
`fast_weight_lr_multiplier` scales the fast weights' updates (a learning-rate multiplier
for any optimizer). Evaluation adds the ensemble metrics and `test/<metric>_member_<i>`.

  python baselines/vit_jax/batchensemble.py \
      --config=baselines/vit_jax/configs/cifar10_vit_batchensemble.py \
      --data_dir=/work/data --output_dir=runs/vit_jax_batchensemble
"""
from uncertainty_baselines.jax_training import experiment
from uncertainty_baselines.jax_training.method import Method, multipliers_by_name


def validate(config) -> list[str]:
    errors = []
    if "fast_weight_lr_multiplier" not in config or config.fast_weight_lr_multiplier < 0:
        errors.append("fast_weight_lr_multiplier must be set and >= 0")
    if config.model.get("ens_size", 1) < 2:
        errors.append(f"model.ens_size must be >= 2 for BatchEnsemble, got {config.model.get('ens_size', 1)}")
    return errors


BATCHENSEMBLE = Method(
    "batchensemble", validate=validate,
    lr_multipliers=lambda config, params: multipliers_by_name(params, config.fast_weight_lr_multiplier),
    ood_scores=("msp", "entropy", "mutual_information"))

if __name__ == "__main__":
    experiment.main(BATCHENSEMBLE)
