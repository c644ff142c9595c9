r"""SNGP ResNet-50 (Liu et al. 2020) on ImageNet.

baselines/cifar/sngp.py's method on the ResNet-50 builder: every conv spectrally
normalised (operator norm at most --spec_norm_bound), the output layer a random-feature
Gaussian process whose Laplace precision is summed over each epoch (reset at its start);
the prediction is one pass of mean-field logits. Checked against the reference's ImageNet
SNGP script (google/uncertainty-baselines, baselines/imagenet/sngp.py): the same spectral
norm (bound 6, 1 power iteration), 1,024 orthogonal random features, length-scale 1,
ridge 1, exact precision reset each epoch, mean-field factor 1, no dropout, and the
ResNet-50 schedule (90 epochs, 0.1 per 256, 5 warm-up epochs, x0.1 at 30/60/80). Three
differences remain: the reference feeds the 2,048 pooled features to the GP without
layer normalisation or projection (here: layer-normalised and projected to 128 dimensions,
`--gp_input_dim=0` drops the projection), initialises the output weights N(0, 0.01^2), and
puts its L2 1e-4 on kernels and biases only (here: --l2 on every weight, as the other
ImageNet scripts).

  python baselines/imagenet/sngp.py --data_dir=/data/tfds --output_dir=/runs/r50-sngp \
      --batch_size=1024 --strategy=mirrored
"""
from absl import app, flags

from uncertainty_baselines.training import experiment, imagenet, method, method_flags

imagenet.define_imagenet_flags()
method_flags.define_sngp_flags(gp_length_scale=1.0, gp_mean_field_factor=1.0, dropout_rate=0.0)
FLAGS = flags.FLAGS


def model_spec(config, data) -> dict:
    return {"name": "resnet50_sngp",
            "kwargs": {**imagenet.resnet50_kwargs(config, data), **method_flags.sngp_kwargs(config)}}


def sngp() -> method.Method:
    return method.Method(
        "sngp", model_spec=model_spec,
        validate=lambda config: imagenet.resnet50_errors(config) + method_flags.sngp_errors(config),
        method_flags=(*imagenet.RESNET50_FLAGS, *method_flags.SNGP_FLAGS),
        on_epoch_start=method_flags.sngp_epoch_hook(FLAGS), ood_scores=("msp", "dempster_shafer"))


if __name__ == "__main__":
    app.run(lambda argv: experiment.run_from_flags(FLAGS, sngp(), task=imagenet.IMAGENET_TASK))
