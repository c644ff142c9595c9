r"""Deterministic ResNet-50 on ImageNet (ILSVRC-2012), the reference every ImageNet method is
compared against.

baselines/cifar/deterministic.py's method on the ResNet-50 builder: Nesterov SGD, L2 as a
loss term, 5 warm-up epochs and x0.1 at epochs 30/60/80 of 90, LR 0.1 per 256 examples,
evaluated on the clean validation set (our 'test' split) and, with
--corruptions_interval, ImageNet-C. The run itself (flags, data, resume, evaluation,
checkpoints, run record) is `uncertainty_baselines.training.experiment`; the ImageNet
defaults and task are `training.imagenet`. Prepare the data first (README.md here).

  python baselines/imagenet/deterministic.py --data_dir=/data/tfds --output_dir=/runs/r50 \
      --batch_size=1024 --strategy=mirrored
"""
from absl import app, flags

from uncertainty_baselines.training import experiment, imagenet, method

imagenet.define_imagenet_flags()
FLAGS = flags.FLAGS


def model_spec(config, data) -> dict:
    return {"name": "resnet50", "kwargs": imagenet.resnet50_kwargs(config, data)}


DETERMINISTIC = method.Method("deterministic", model_spec=model_spec, method_flags=imagenet.RESNET50_FLAGS,
                              validate=imagenet.resnet50_errors, ood_scores=method.SOFTMAX_OOD_SCORES)

if __name__ == "__main__":
    app.run(lambda argv: experiment.run_from_flags(FLAGS, DETERMINISTIC, task=imagenet.IMAGENET_TASK))
