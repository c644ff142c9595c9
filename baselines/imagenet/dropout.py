r"""Monte Carlo dropout ResNet-50 (Gal & Ghahramani 2016) on ImageNet.

baselines/cifar/dropout.py's method on the ResNet-50 builder: dropout once in every
bottleneck (after its 3x3 conv's BN-ReLU) that stays on at test time; the prediction
averages the softmax of `--num_dropout_samples` passes, whose spread gives the mutual
information OOD score. ImageNet reference defaults otherwise (`training.imagenet`).

  python baselines/imagenet/dropout.py --data_dir=/data/tfds --output_dir=/runs/r50-dropout \
      --batch_size=1024 --strategy=mirrored
"""
from absl import app, flags

from uncertainty_baselines.training import experiment, imagenet, method, method_flags

imagenet.define_imagenet_flags()
method_flags.define_dropout_flags()
FLAGS = flags.FLAGS


def model_spec(config, data) -> dict:
    return {"name": "resnet50_mc_dropout",
            "kwargs": {**imagenet.resnet50_kwargs(config, data), **method_flags.dropout_kwargs(config)}}


def mc_dropout() -> method.Method:
    return method.Method(
        "mc_dropout", model_spec=model_spec,
        validate=lambda config: imagenet.resnet50_errors(config) + method_flags.dropout_errors(config),
        predict=method.stochastic_passes(FLAGS.num_dropout_samples),
        method_flags=(*imagenet.RESNET50_FLAGS, *method_flags.DROPOUT_FLAGS),
        ood_scores=("msp", "entropy", "mutual_information"))


if __name__ == "__main__":
    app.run(lambda argv: experiment.run_from_flags(FLAGS, mc_dropout(), task=imagenet.IMAGENET_TASK))
