"""Learning-rate schedule: hand-computed values of warm-up and piecewise decay."""
import numpy as np
import pytest

from uncertainty_baselines.training import schedules


def lrs(schedule, steps):
    return [float(np.asarray(schedule(s))) for s in steps]


def test_reference_schedule_scaled_to_a_short_run():
    # 10 epochs of 10 steps at global batch 512: peak 0.1 * 512 / 128 = 0.4, 1 warm-up
    # epoch (10 steps), decay x0.2 at fractions 0.3/0.6/0.8 -> steps 30, 60, 80.
    s = schedules.image_schedule(base_learning_rate=0.1, global_batch_size=512, steps_per_epoch=10,
                                 train_epochs=10, warmup_epochs=1, decay_fractions=[0.3, 0.6, 0.8],
                                 decay_ratio=0.2)
    assert s.boundaries == [30, 60, 80]
    got = lrs(s, [0, 4, 9, 10, 29, 30, 59, 60, 80, 99])
    want = [0.04, 0.2, 0.4, 0.4, 0.4, 0.08, 0.08, 0.016, 0.0032, 0.0032]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_no_warmup_starts_at_peak():
    s = schedules.WarmUpPiecewiseConstant(0.1, warmup_steps=0, boundaries=[2], decay_ratio=0.5)
    np.testing.assert_allclose(lrs(s, [0, 1, 2, 3]), [0.1, 0.1, 0.05, 0.05], rtol=1e-6)


def test_schedule_config_round_trip():
    s = schedules.WarmUpPiecewiseConstant(0.2, 5, [10, 20], 0.1)
    s2 = schedules.WarmUpPiecewiseConstant(**s.get_config())
    assert lrs(s, range(25)) == lrs(s2, range(25))


@pytest.mark.parametrize("fractions", [[0.6, 0.3], [0.0, 0.5], [0.5, 1.2], [0.5, 0.5]])
def test_bad_decay_fractions(fractions):
    with pytest.raises(ValueError, match="decay fractions"):
        schedules.decay_boundaries(fractions, 10, 10)


def test_scaled_learning_rate_and_bad_values():
    assert schedules.scaled_learning_rate(0.1, 64) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="global_batch_size"):
        schedules.scaled_learning_rate(0.1, 0)
    with pytest.raises(ValueError, match="decay_ratio"):
        schedules.WarmUpPiecewiseConstant(0.1, 1, [], 1.5)


def test_nesterov_sgd_has_no_decoupled_decay():
    opt = schedules.nesterov_sgd(0.1)
    assert opt.nesterov and opt.momentum == 0.9 and opt.weight_decay is None


def test_cosine_schedule_hand_values():
    # 4 epochs of 10 steps at batch 256: peak 0.2, 5 warm-up steps, cosine over steps 5..40.
    s = schedules.image_schedule(base_learning_rate=0.1, global_batch_size=256, steps_per_epoch=10,
                                 train_epochs=4, warmup_epochs=0.5, decay_fractions=[], decay_ratio=1.0,
                                 kind="cosine")
    got = lrs(s, [0, 4, 5, 22.5, 40, 45])
    np.testing.assert_allclose(got, [0.04, 0.2, 0.2, 0.1, 0.0, 0.0], rtol=1e-6, atol=1e-7)
    assert lrs(schedules.WarmUpCosine(**s.get_config()), range(41)) == lrs(s, range(41))
    with pytest.raises(ValueError, match="unknown schedule 'exponential'"):
        schedules.image_schedule(base_learning_rate=0.1, global_batch_size=8, steps_per_epoch=1, train_epochs=1,
                                 warmup_epochs=0, decay_fractions=[], decay_ratio=1.0, kind="exponential")
    with pytest.raises(ValueError, match="warmup_steps < total_steps"):
        schedules.WarmUpCosine(0.1, 10, 10)


def test_linear_image_schedule_hand_values():
    # The cosine test's budget with linear decay: 0.2 at step 5, half of it at 22.5, 0 at 40.
    s = schedules.image_schedule(base_learning_rate=0.1, global_batch_size=256, steps_per_epoch=10,
                                 train_epochs=4, warmup_epochs=0.5, decay_fractions=[], decay_ratio=1.0,
                                 kind="linear")
    np.testing.assert_allclose(lrs(s, [0, 4, 5, 13.75, 22.5, 40, 45]), [0.04, 0.2, 0.2, 0.15, 0.1, 0.0, 0.0],
                               rtol=1e-6, atol=1e-7)


def test_warmup_linear_decay_hand_values():
    # Peak 1e-4, 2 warm-up steps of 10: 5e-5, 1e-4, then 1e-4 x (10 - step) / 8 down to 0.
    s = schedules.WarmUpLinearDecay(1e-4, warmup_steps=2, total_steps=10)
    np.testing.assert_allclose(lrs(s, [0, 1, 2, 6, 9, 10, 12]),
                               [5e-5, 1e-4, 1e-4, 5e-5, 1.25e-5, 0.0, 0.0], rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(lrs(schedules.WarmUpLinearDecay(1.0, 0, 4), [0, 2]), [1.0, 0.5], rtol=1e-6)
    with pytest.raises(ValueError, match="0 <= warmup_steps < total_steps"):
        schedules.WarmUpLinearDecay(1e-4, warmup_steps=10, total_steps=10)


def test_adamw_decays_kernels_and_embeddings_not_layer_norms_or_biases():
    import keras
    inputs = keras.Input((3,))
    x = keras.layers.Embedding(5, 3, name="embed")(keras.ops.cast(inputs, "int32"))
    x = keras.layers.LayerNormalization(name="norm")(keras.layers.Dense(4, name="dense")(x))
    model = keras.Model(inputs, x)
    optimizer = schedules.adamw(1e-3, weight_decay=0.01)
    optimizer.build(model.trainable_variables)
    decayed = {v.path for v in model.trainable_variables if optimizer._use_weight_decay(v)}
    assert decayed == {"embed/embeddings", "dense/kernel"}
    assert optimizer.epsilon == 1e-6 and optimizer.global_clipnorm is None


def small_model(keras, sparse: bool):
    """Dense(2) over the token embeddings' sum (`sparse`: the embedding gets a sparse
    gradient) or over 3 float inputs; weights drawn from a fixed seed."""
    inputs = keras.Input((3,), dtype="int32" if sparse else "float32")
    x = keras.ops.sum(keras.layers.Embedding(5, 4, name="embed")(inputs), axis=1) if sparse else inputs
    model = keras.Model(inputs, keras.layers.Dense(2, name="dense")(x))
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])
    return model


def adam_steps(optimizer, model, inputs, steps=3):
    """`steps` updates of `optimizer` on a squared-output loss; the weights after each."""
    import tensorflow as tf
    optimizer.build(model.trainable_variables)
    weights = []
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model(inputs) ** 2)
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        weights.append([np.asarray(v) for v in model.trainable_variables])
    return weights


ADAMW = dict(learning_rate=0.1, weight_decay=0.01, epsilon=1e-6)


def test_fused_adamw_is_keras_adamw_on_dense_gradients():
    import keras
    x = np.random.default_rng(1).normal(size=(4, 3)).astype("float32")
    fused = adam_steps(schedules.FusedAdamW(**ADAMW), small_model(keras, sparse=False), x)
    plain = adam_steps(keras.optimizers.AdamW(**ADAMW), small_model(keras, sparse=False), x)
    for fused_step, keras_step in zip(fused, plain):  # equal to 1e-4 of a step (lr 0.1)
        for f, k in zip(fused_step, keras_step):
            np.testing.assert_allclose(f, k, rtol=0, atol=1e-5)


def test_fused_adamw_is_textbook_adamw_on_sparse_gradients():
    import keras
    import tensorflow as tf
    tokens = np.array([[1, 1, 3]], np.int32)  # token 1 twice: two rows of its sparse gradient
    fused = adam_steps(schedules.FusedAdamW(**ADAMW), small_model(keras, sparse=True), tokens)
    # Textbook AdamW on the dense (per-token summed) gradient, in NumPy, replaying the
    # dense layer's weights from the fused run.
    model = small_model(keras, sparse=True)
    table, m, v = np.asarray(model.trainable_variables[0]), 0.0, 0.0
    for t, fused_weights in enumerate(fused, start=1):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model(tokens) ** 2)
        grad = tf.convert_to_tensor(tape.gradient(loss, model.trainable_variables[0])).numpy()
        table = table * (1 - 0.1 * 0.01)  # decoupled weight decay first, as Keras applies it
        m, v = 0.9 * m + 0.1 * grad, 0.999 * v + 0.001 * grad**2
        table = table - 0.1 * np.sqrt(1 - 0.999**t) / (1 - 0.9**t) * m / (np.sqrt(v) + 1e-6)
        np.testing.assert_allclose(fused_weights[0], table, rtol=0, atol=1e-5)
        for variable, value in zip(model.trainable_variables, [table, *fused_weights[1:]]):
            variable.assign(value)
    # Keras' AdamW squares the two occurrences of token 1 apart: another second moment.
    plain = adam_steps(keras.optimizers.AdamW(**ADAMW), small_model(keras, sparse=True), tokens, steps=1)
    assert np.abs(plain[0][0][1] - fused[0][0][1]).max() > 1e-3


def test_fused_adamw_refuses_amsgrad():
    with pytest.raises(ValueError, match="no AMSGrad"):
        schedules.FusedAdamW(learning_rate=0.1, amsgrad=True)


@pytest.mark.parametrize("kind", ["step", "cosine", "linear"])
def test_lr_schedule_flag_picks_the_optimizers_schedule(kind):
    """--lr_schedule reaches the optimizer a baseline trains with: 2 epochs of 10 steps at
    batch 128 (peak 0.2), 5 warm-up steps; step decays x0.25 at step 6 (30%), cosine and
    linear run from step 5 to zero at step 20."""
    from image_flag_values import image_flags
    from uncertainty_baselines.training import experiment
    config = image_flags(lr_schedule=kind, base_learning_rate=0.2, batch_size=128, lr_warmup_epochs=0.5,
                         lr_decay_ratio=0.25, lr_decay_epochs=["0.3"])
    optimizer = experiment.default_optimizer(config, steps_per_epoch=10)
    want = {"step": lambda t: 0.05, "cosine": lambda t: 0.1 * (1 + np.cos(np.pi * t)), "linear": lambda t: 0.2 * (1 - t)}
    for step in (4, 12, 19):
        optimizer.iterations.assign(step)
        expected = 0.2 if step < 5 else want[kind]((step - 5) / 15)
        assert float(np.asarray(optimizer.learning_rate)) == pytest.approx(expected, rel=1e-5), step
