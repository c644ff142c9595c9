"""Base learning rate x L2 of the deterministic WRN-16-2 at the common budget (4 epochs,
cosine schedule; baselines/cifar/common_budget.sh), 8 scrambled-Halton points, scored on
the test set as the methods table is (there is no CIFAR validation split here: treat the
result as exploratory, not as a tuned number).

    python -m uncertainty_baselines.sweep run baselines/cifar/sweeps/lr_l2_halton.py \
        --out runs/sweeps/cifar_lr_l2 --set data_dir=/work/data --lock /tmp/ub_heavy.lock

About 15-30 min per run on 2 CPU cores: print the commands for a cluster instead with
`python -m uncertainty_baselines.sweep commands ...`.
"""
from uncertainty_baselines.sweep import LogUniform, Sweep, halton

SWEEP = Sweep(
    script="baselines/cifar/deterministic.py",
    space=halton(8, seed=0, base_learning_rate=LogUniform(0.03, 0.3), l2=LogUniform(1e-5, 1e-3)),
    fixed={"dataset": "cifar10", "depth": 16, "width": 2, "train_epochs": 4, "batch_size": 128,
           "lr_schedule": "cosine", "lr_warmup_epochs": 0.5128, "initializer": "glorot_uniform",
           "l2_scope": "kernels", "seed": 42, "eval_on_ood": True, "ood_dataset": "mnist"},
    metrics=("test/accuracy", "test/negative_log_likelihood", "test/ece", "ood/mnist_auroc"),
    description="WRN-16-2 base learning rate x L2, Halton, common budget",
)
