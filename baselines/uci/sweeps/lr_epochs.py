"""Learning rate x epochs of the deterministic UCI baseline on two small sets, scored on the
validation carve-out (the last 20% of each training split), never on test.

    python -m uncertainty_baselines.sweep run baselines/uci/sweeps/lr_epochs.py \
        --out runs/sweeps/uci_lr_epochs --set data_dir=../shared/data --lock /tmp/ub_heavy.lock

18 runs of a few seconds each (all 20 splits of a set train as one stacked model); the
example page is docs/sweeps/uci_lr_epochs.html.
"""
from uncertainty_baselines.sweep import Sweep, grid

SWEEP = Sweep(
    script="baselines/uci/deterministic.py",
    space=grid(dataset=["uci_yacht", "uci_boston_housing"], learning_rate=[1e-3, 3e-3, 1e-2],
               epochs=[40, 100, 400]),
    fixed={"split": "all", "validation_percent": 0.2},
    metrics=("validation/log_likelihood", "validation/rmse", "validation/crps", "validation/interval_coverage_95"),
    description="Adam learning rate x epochs, deterministic Gaussian MLP, validation carve-out",
)
