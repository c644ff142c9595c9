r"""BatchEnsemble ResNet-50 (Wen, Tran & Ba 2020) on ImageNet.

baselines/cifar/batchensemble.py's method on the ResNet-50 builder: M members share every
kernel and differ by rank-1 fast weights; each batch is tiled M times inside, the loss is
the members' mean cross-entropy, the prediction the mean of their softmax. M = 4, the fast
weights drawn from N(1, 0.5^2) and trained at a quarter of the learning rate (the reference
ImageNet script's values; the CIFAR one uses half); ImageNet reference defaults otherwise.

  python baselines/imagenet/batchensemble.py --data_dir=/data/tfds \
      --output_dir=/runs/r50-batchensemble --batch_size=1024 --strategy=mirrored
"""
from absl import app, flags

from uncertainty_baselines.training import experiment, imagenet, method, method_flags

imagenet.define_imagenet_flags()
method_flags.define_batchensemble_flags(fast_weight_lr_multiplier=0.25)
FLAGS = flags.FLAGS


def model_spec(config, data) -> dict:
    return {"name": "resnet50_batchensemble",
            "kwargs": {**imagenet.resnet50_kwargs(config, data), **method_flags.batchensemble_kwargs(config)}}


def batchensemble() -> method.Method:
    return method.Method(
        "batchensemble", model_spec=model_spec,
        validate=lambda config: imagenet.resnet50_errors(config) + method_flags.batchensemble_errors(config),
        learning_rate_scales=method_flags.fast_weight_scales(FLAGS.fast_weight_lr_multiplier),
        method_flags=(*imagenet.RESNET50_FLAGS, *method_flags.BATCHENSEMBLE_FLAGS),
        ood_scores=("msp", "entropy", "mutual_information"))


if __name__ == "__main__":
    app.run(lambda argv: experiment.run_from_flags(FLAGS, batchensemble(), task=imagenet.IMAGENET_TASK))
