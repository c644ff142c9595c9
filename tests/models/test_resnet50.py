"""ResNet-50: the 25.6M-parameter ImageNet model, v1.5 stride placement, seeding."""
import keras
import numpy as np

from uncertainty_baselines.models.resnet50 import resnet50


def test_resnet50_has_25_6_million_parameters(resnet50_imagenet):
    model = resnet50_imagenet
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    # 25,557,032: the published parameter count of ResNet-50 (torchvision, 1000 classes).
    assert trainable == 25_557_032
    assert round(trainable / 1e6, 1) == 25.6
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    assert len(convs) == 1 + 3 * 16 + 4  # stem, 16 bottlenecks, 4 projections
    assert all(not c.use_bias for c in convs)
    bns = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert all(l.epsilon == 1e-5 and l.momentum == 0.9 for l in bns)


def test_v1_5_downsamples_in_the_3x3_conv(resnet50_imagenet):
    strided = [l for l in resnet50_imagenet.layers
               if isinstance(l, keras.layers.Conv2D) and l.strides == (2, 2)]
    # stem 7x7, then per downsampling stage the 3x3 conv and the 1x1 projection.
    assert [l.kernel_size for l in strided] == [(7, 7)] + [(3, 3), (1, 1)] * 3


def test_small_input_gives_logits_and_the_seed_fixes_the_weights(resnet50_imagenet):
    # Weight shapes do not depend on the image size: same seed, same weights at 32x32.
    model = resnet50((32, 32, 3), num_classes=1000, seed=0)
    for a, b in zip(model.weights, resnet50_imagenet.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    x = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype(np.float32)
    logits = keras.ops.convert_to_numpy(model(x, training=False))
    assert logits.shape == (2, 1000) and np.isfinite(logits).all()


def test_method_models_from_the_wide_resnets_factories():
    """resnet50_mc_dropout at rate 0 is the plain ResNet-50 of its seed; BatchEnsemble gives
    [B, M, K]; SNGP gives [B, K] logits with spectral-norm convs and a GP head."""
    import numpy as np

    import uncertainty_baselines as ub
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    plain = ub.models.get("resnet50", input_shape=(32, 32, 3), num_classes=5, seed=3)
    dropout = ub.models.get("resnet50_mc_dropout", input_shape=(32, 32, 3), num_classes=5, seed=3, dropout_rate=0.0)
    np.testing.assert_allclose(np.asarray(dropout(x, training=False)), np.asarray(plain(x, training=False)),
                               rtol=1e-5, atol=1e-6)
    assert sum(type(layer).__name__ == "MCDropout" for layer in dropout.layers) == 16  # One per bottleneck.
    batchensemble = ub.models.get("resnet50_batchensemble", input_shape=(32, 32, 3), num_classes=5, ensemble_size=2)
    assert tuple(batchensemble(x).shape) == (2, 2, 5)
    sngp = ub.models.get("resnet50_sngp", input_shape=(32, 32, 3), num_classes=5, num_inducing=16)
    assert tuple(sngp(x, training=False).shape) == (2, 5)
    assert sum(type(layer).__name__ == "SpectralNormConv2D" for layer in sngp.layers) == 53
