"""Valid values of the common image flags as a plain namespace, for tests to override."""
import types


def image_flags(**overrides):
    values = dict(
        dataset="cifar10", crop_padding=None, train_epochs=2, batch_size=64, eval_batch_size=None, train_examples=None,
        base_learning_rate=0.1, lr_schedule="step", lr_warmup_epochs=1.0, lr_decay_ratio=0.2, momentum=0.9, l2=2e-4,
        lr_decay_epochs=["0.3", "0.6", "0.8"], checkpoint_interval=1, keep_checkpoints=3,
        corruptions_interval=0, steps_per_loop=10, output_dir="/tmp/x", eval_only=False,
        checkpoint_dir=None, eval_on_ood=False, ood_dataset=["cifar100"], corruption_types=[], severities=["1"],
        strategy="cpu", num_cores=None)
    values.update(overrides)
    return types.SimpleNamespace(**values)
