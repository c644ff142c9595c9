r"""MIMO Wide ResNet (Havasi et al. 2021): M subnetworks in one network, on CIFAR-10/100.

Training stacks M images on the channel axis and predicts all M labels with M heads; the
loss is the heads' summed cross-entropy. As in the reference, `--batch_size` counts rows
after repetition: a step reads batch_size / `--batch_repetitions` examples, repeats them,
and gives each member its own shuffle (seeded from the run seed and the step, so a
resumed run sees the same batches); the learning rate scales with the distinct examples.
At test time the same image is fed to all M inputs and the members' softmax averaged.
Reference defaults: M = 3, batch repetitions 4, input repetition probability 0, L2 3e-4
(also on batch norm and biases), 250 epochs, decays at the reference's 80/160/180 "of 200"
rescaled to 250 epochs (100/200/225).

  python baselines/cifar/mimo.py --dataset=cifar10 --data_dir=/work/data \
      --output_dir=/tmp/wrn28-10-mimo --depth=28 --width=10 --batch_size=512
"""
from absl import app, flags

from uncertainty_baselines.training import experiment, method
from uncertainty_baselines.training import flags as ub_flags

ub_flags.define_image_flags(train_epochs=250, l2=3e-4, lr_decay_epochs=(0.4, 0.8, 0.9))
ub_flags.define_wide_resnet_flags()
flags.DEFINE_integer("ensemble_size", 3, "Members M (inputs and heads).")
flags.DEFINE_integer("batch_repetitions", 4, "Times each example appears in a training batch.")
FLAGS = flags.FLAGS


def validate(config) -> list[str]:
    errors = ub_flags.wide_resnet_errors(config) + ub_flags.at_least_one_errors(
        config, "ensemble_size", "batch_repetitions")
    replicas = ub_flags.num_replicas(config.strategy, config.num_cores) or 1
    if config.batch_repetitions >= 1 and config.batch_size % (config.batch_repetitions * replicas):
        errors.append(f"--batch_size={config.batch_size} must be divisible by --batch_repetitions="
                      f"{config.batch_repetitions} x {replicas} replica(s): it counts the repeated rows")
    return errors


def model_spec(config, data) -> dict:
    return {"name": "wide_resnet_mimo",
            "kwargs": {**ub_flags.wide_resnet_kwargs(config, data), "ensemble_size": config.ensemble_size}}


def mimo() -> method.Method:
    return method.Method(
        "mimo", model_spec=model_spec, validate=validate,
        format_batch=method.repeated_per_member_shuffles(FLAGS.batch_repetitions, FLAGS.ensemble_size),
        batch_repetitions=FLAGS.batch_repetitions, loss=method.summed_member_cross_entropy,
        predict=method.same_input_to_every_member(FLAGS.ensemble_size),
        method_flags=(*ub_flags.WIDE_RESNET_FLAGS, "ensemble_size", "batch_repetitions"),
        ood_scores=("msp", "entropy", "mutual_information"))


if __name__ == "__main__":
    app.run(lambda argv: experiment.run_from_flags(FLAGS, mimo()))
