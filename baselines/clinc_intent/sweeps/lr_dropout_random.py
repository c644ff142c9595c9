"""Peak learning rate x pooled-feature dropout of the deterministic MiniLM classifier on
CLINC150, 6 random draws at the short budget (5 epochs, batch 64; short_budget.sh).

    python -m uncertainty_baselines.sweep run baselines/clinc_intent/sweeps/lr_dropout_random.py \
        --out runs/sweeps/clinc_lr_dropout --set data_dir=/work/data --lock /tmp/ub_heavy.lock

About 45 min per run on 2 CPU cores: print the commands for a cluster instead with
`python -m uncertainty_baselines.sweep commands ...`.
"""
from uncertainty_baselines.sweep import LogUniform, Sweep, Uniform, random_search

SWEEP = Sweep(
    script="baselines/clinc_intent/deterministic.py",
    space=random_search(6, seed=0, learning_rate=LogUniform(2e-5, 2e-4), dropout_rate=Uniform(0.0, 0.3)),
    fixed={"train_epochs": 5, "batch_size": 64, "seed": 0},
    metrics=("test/accuracy", "test/ece", "ood/combined_auroc"),
    description="MiniLM peak learning rate x dropout, random search, short budget",
)
