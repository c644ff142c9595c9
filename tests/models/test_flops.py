"""FLOP counting against hand-computed multiply-adds and published model costs."""
import keras
import pytest

from uncertainty_baselines.models import flops


def test_conv_and_dense_multiply_adds_by_hand():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)              # 8*8 * 3*3*3*4
    x = keras.layers.Conv2D(5, 3, strides=2, padding="valid")(x)       # 3*3 * 3*3*4*5
    x = keras.layers.BatchNormalization()(x)                           # not counted
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)             # 3*3 * 3*3*5
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2)(x)                                 # 5*2
    model = keras.Model(inputs, outputs)
    macs = 64 * 108 + 9 * 180 + 9 * 45 + 10
    assert flops.multiply_adds_per_example(model) == macs
    assert flops.flops_per_example(model, training=False) == 2 * macs
    assert flops.flops_per_example(model) == 6 * macs


def test_dense_on_a_sequence_counts_every_position():
    inputs = keras.Input((6, 4))
    model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    assert flops.multiply_adds_per_example(model) == 6 * 4 * 3


def test_nested_models_are_counted():
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inner(inputs)))
    assert flops.multiply_adds_per_example(model) == 4 * 3 + 3 * 2


def test_uncounted_kernel_layers_raise():
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Conv2DTranspose(2, 3)(inputs))
    with pytest.raises(ValueError, match="cannot count.*Conv2DTranspose"):
        flops.multiply_adds_per_example(model)


def test_published_costs_of_resnet50_and_wrn_28_10(resnet50_imagenet, wrn_28_10):
    # torchvision lists ResNet-50 at 4.09 G multiply-adds for 224x224; WRN-28-10 is
    # commonly quoted at 5.25 G for 32x32.
    macs = flops.multiply_adds_per_example(resnet50_imagenet)
    assert macs / 1e9 == pytest.approx(4.09, abs=0.01)
    assert flops.multiply_adds_per_example(wrn_28_10) / 1e9 == pytest.approx(5.25, abs=0.01)


def test_matmul_peak_is_a_plausible_rate_and_validates_input():
    assert 1e8 < flops.matmul_peak_flops(n=256, repeats=2) < 1e14
    with pytest.raises(ValueError, match="n and repeats"):
        flops.matmul_peak_flops(n=0)
