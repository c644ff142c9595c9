"""Each seam of training.method.Method proven with a small test method on synthetic data.

Two heads (a member axis in the model), two stochastic passes (a member axis in
prediction), an extra loss term, a seeded batch formatter, an epoch hook, OOD score
kinds, and an ensemble evaluated from finished run directories.
"""
import json
import re
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

import uncertainty_baselines as ub
from synthetic_run import BATCH, CLASSES, N_TRAIN, dense_model, fit, interrupt_at, make_data, strip
from uncertainty_baselines.runs import bundle, checkpoint, lifecycle
from uncertainty_baselines.training import distribution, experiment, loop
from uncertainty_baselines.training import method as method_lib
from uncertainty_baselines.training.method import Method, member_cross_entropy


def two_heads():
    """Two output heads: logits [B, 2, K]."""
    inputs = keras.Input((5,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Reshape((2, CLASSES))(keras.layers.Dense(2 * CLASSES)(hidden)))


def test_member_cross_entropy_is_the_members_mean():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 2, CLASSES)).astype(np.float32)
    labels = np.array([0, 1, 2, 1])
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -(log_p[np.arange(4), 0, labels] + log_p[np.arange(4), 1, labels]) / 2
    np.testing.assert_allclose(member_cross_entropy(tf.constant(labels), tf.constant(logits)), expected, rtol=1e-5)
    own_labels = np.array([[0, 1], [1, 1], [2, 0], [1, 2]])  # MIMO: each member its own label.
    expected = -(log_p[np.arange(4), 0, own_labels[:, 0]] + log_p[np.arange(4), 1, own_labels[:, 1]]) / 2
    np.testing.assert_allclose(member_cross_entropy(tf.constant(own_labels), tf.constant(logits)), expected, rtol=1e-5)


def test_summed_member_cross_entropy_is_the_members_sum():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(4, 3, CLASSES)).astype(np.float32)
    labels = np.array([[0, 1, 2], [1, 1, 0], [2, 0, 0], [1, 2, 1]])
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -sum(log_p[np.arange(4), m, labels[:, m]] for m in range(3))
    got = method_lib.summed_member_cross_entropy(tf.constant(labels), tf.constant(logits))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_two_heads_report_ensemble_and_per_member_metrics(tmp_path):
    record, model = fit(tmp_path, model_fn=two_heads, epochs=2, ood=True)
    for key in ("test/disagreement", "test/ensemble_negative_log_likelihood", "test/gibbs_negative_log_likelihood",
                "test/mutual_information", "test/accuracy_member_0", "test/ece_member_1", "ood/far_auroc"):
        assert key in record, key
    # The reported NLL is that of the heads' mean softmax, recomputed here from the model.
    data = make_data(distribution.get_strategy("cpu"))
    batches = [b for b in data.test]
    x = np.concatenate([b["features"] for b in batches])
    y, keep = np.concatenate([b["labels"] for b in batches]), np.concatenate([b["mask"] for b in batches]) > 0
    probs = tf.nn.softmax(model(x[keep], training=False), axis=-1).numpy().mean(axis=1)
    nll = -np.log(probs[np.arange(keep.sum()), y[keep]]).mean()
    assert record["test/negative_log_likelihood"] == pytest.approx(nll, rel=1e-5)
    assert record["test/gibbs_negative_log_likelihood"] >= record["test/ensemble_negative_log_likelihood"]


def test_two_stochastic_passes_and_ood_score_kinds(tmp_path):
    def dropout_model():
        return keras.Sequential([keras.Input((5,)), keras.layers.Dense(16, activation="relu"),
                                 keras.layers.Dropout(0.5, seed=1), keras.layers.Dense(CLASSES)])

    def two_passes(model, features):
        return tf.stack([model(features, training=True) for _ in range(2)], axis=1)

    method = Method("two_passes", predict=two_passes, ood_scores=("msp", "entropy", "mutual_information", "energy"))
    record, _ = fit(tmp_path, model_fn=dropout_model, epochs=1, ood=True, method=method)
    assert record["test/disagreement"] > 0 and record["test/mutual_information"] > 0  # The passes differ.
    for kind in ("", "_entropy", "_mutual_information", "_energy"):
        assert 0 <= record[f"ood/far{kind}_auroc"] <= 1, kind
    assert record["ood/far_auroc"] != record["ood/far_mutual_information_auroc"]


def test_extra_loss_terms_are_added_and_reported(tmp_path):
    contexts = []

    def with_kl(model, context):
        contexts.append(context)
        return {"l2": tf.add_n(model.losses), "kl": 0.01 * tf.reduce_sum(model.trainable_variables[0] ** 2)}

    record, _ = fit(tmp_path, epochs=1, method=Method("kl", extra_losses=with_kl))
    assert record["train/kl"] > 0 and record["train/l2"] > 0
    assert {(c.steps_per_epoch, c.num_train_examples) for c in contexts} == {(N_TRAIN // BATCH, N_TRAIN)}
    assert record["train/loss"] == pytest.approx(
        record["train/negative_log_likelihood"] + record["train/l2"] + record["train/kl"], rel=1e-6)
    # The term changes the update: without it the weights end elsewhere.
    _, plain = fit(tmp_path / "plain", epochs=1)
    _, regularised = fit(tmp_path / "kl2", epochs=1, method=Method("kl", extra_losses=with_kl))
    assert not np.array_equal(np.asarray(plain.trainable_variables[0]), np.asarray(regularised.trainable_variables[0]))


def add_seeded_noise(batch, seed):
    noise = tf.random.stateless_normal(tf.shape(batch["features"]), seed=seed)
    return {**batch, "features": batch["features"] + 0.5 * noise}


def test_batch_formatter_is_seeded_by_step_so_resume_is_exact(tmp_path):
    method = Method("noisy", format_batch=add_seeded_noise)
    ref, ref_model = fit(tmp_path / "ref", method=method, seed=11)
    with pytest.raises(KeyboardInterrupt):
        fit(tmp_path / "cut", method=method, seed=11, wrap_train_fn=interrupt_at(5))
    got, got_model = fit(tmp_path / "cut", method=method, seed=11)
    assert strip(got) == strip(ref)
    for a, b in zip(ref_model.variables, got_model.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    other_seed, _ = fit(tmp_path / "other", method=method, seed=12)
    plain, _ = fit(tmp_path / "plain")
    assert strip(other_seed) != strip(ref) and strip(plain) != strip(ref)  # The formatter acts, seeded.


def test_epoch_hook_runs_before_each_epoch_including_after_resume(tmp_path):
    seen = []
    method = Method("hooked", on_epoch_start=lambda model, epoch: seen.append(epoch))
    with pytest.raises(KeyboardInterrupt):
        fit(tmp_path, method=method, wrap_train_fn=interrupt_at(5))  # Dies in epoch 3.
    assert seen == [0, 1, 2]
    seen.clear()
    fit(tmp_path, method=method)
    assert seen == [2]


def write_finished_run(run_dir, seed):
    """A run directory as a baseline leaves it: run.json naming the model, a verified checkpoint."""
    spec = {"name": "wide_resnet", "kwargs": {"input_shape": [8, 8, 1], "depth": 10, "width_multiplier": 1,
                                              "num_classes": CLASSES, "seed": seed}}
    model = ub.models.get(spec["name"], **spec["kwargs"])
    run = lifecycle.start_run(run_dir, {"dataset": "tiny", "seed": seed})
    checkpoint.save(run_dir / checkpoint.SUBDIR, 1, {"model": checkpoint.variables_to_arrays(model.variables)}, {})
    run.finish(metrics={}, seed=seed, data_fingerprint=None, model=spec)
    return model


def image_test_set(n=13):
    rng = np.random.default_rng(4)
    pad = -n % BATCH
    x = np.concatenate([rng.normal(size=(n, 8, 8, 1)), np.zeros((pad, 8, 8, 1))]).astype(np.float32)
    return tf.data.Dataset.from_tensor_slices({
        "features": x, "labels": np.concatenate([rng.integers(0, CLASSES, n), np.zeros(pad)]).astype(np.int32),
        "id": np.concatenate([np.arange(n), -np.ones(pad)]).astype(np.int64),
        "mask": (np.arange(n + pad) < n).astype(np.float32)}).batch(BATCH)


def test_ensemble_of_finished_runs(tmp_path):
    strategy = distribution.get_strategy("cpu")
    members = [write_finished_run(tmp_path / f"run{i}", seed=i) for i in range(2)]
    test = strategy.experimental_distribute_dataset(image_test_set())
    data = experiment.ImageData(train=None, steps_per_epoch=0, num_train_examples=0, num_classes=CLASSES,
                                input_shape=(8, 8, 1), test=test, ood={}, corrupted={})
    flat = experiment.evaluate_runs([tmp_path / "run0", tmp_path / "run1"], strategy=strategy, data=data)
    x = np.concatenate([b["features"] for b in image_test_set()])[:13]
    y = np.concatenate([b["labels"] for b in image_test_set()])[:13]
    probs = [tf.nn.softmax(m(x, training=False)).numpy() for m in members]
    mean = (probs[0] + probs[1]) / 2
    assert flat["test/negative_log_likelihood"] == pytest.approx(-np.log(mean[np.arange(13), y]).mean(), rel=1e-5)
    assert flat["test/negative_log_likelihood_member_1"] == pytest.approx(
        -np.log(probs[1][np.arange(13), y]).mean(), rel=1e-5)
    assert flat["test/num_examples"] == 13 and flat["test/disagreement"] >= 0
    record = json.loads((tmp_path / "run1" / "run.json").read_text())
    record["flags"]["dataset"] = "other"
    (tmp_path / "run1" / "run.json").write_text(json.dumps(record))
    with pytest.raises(experiment.MemberError, match="run1 was trained on .other., not .tiny."):
        experiment.evaluate_runs([tmp_path / "run0", tmp_path / "run1"], strategy=strategy, data=data)


def test_members_that_repeat_a_run_or_lack_flags_or_checkpoints_are_named(tmp_path):
    for i in range(2):
        write_finished_run(tmp_path / f"run{i}", seed=i)
    run0, run1 = tmp_path / "run0", tmp_path / "run1"
    experiment.check_member_records([run0, run1])
    experiment.verify_member_checkpoints([run0, run1])
    with pytest.raises(experiment.MemberError, match="at least one member"):
        experiment.check_member_records([])
    with pytest.raises(experiment.MemberError, match=re.escape(f"members {run0} and {run0} are the same run")):
        experiment.check_member_records([run0, run0])
    copy = tmp_path / "copy"  # Same training flags and seed in another folder: one network twice, ...
    shutil.copytree(run0, copy)
    record = json.loads((copy / "run.json").read_text())
    record["flags"]["eval_on_ood"] = True  # ... whatever it was evaluated on.
    (copy / "run.json").write_text(json.dumps(record))
    with pytest.raises(experiment.MemberError, match=re.escape(f"{copy} are the same run (same training flags and seed 0")):
        experiment.check_member_records([run0, copy])
    for folder in (run0, copy):  # Imported reference models record no seed: not judged the same.
        record = json.loads((folder / "run.json").read_text())
        (folder / "run.json").write_text(json.dumps({**record, "flags": {"dataset": "tiny"}}))
    experiment.check_member_records([run0, copy])
    record = json.loads((run1 / "run.json").read_text())
    record["model"]["kwargs"]["num_classes"] = CLASSES + 1  # Another class count: another model.
    (run1 / "run.json").write_text(json.dumps(record))
    with pytest.raises(experiment.MemberError, match=re.escape(f"member {run1} has model ") + ".*" +
                       re.escape(f"differs from {run0}'s")):
        experiment.check_member_records([run0, run1])
    (run1 / "run.json").write_text(json.dumps({k: v for k, v in record.items() if k != "flags"}))
    with pytest.raises(experiment.MemberError, match=re.escape(f"member {run1}: its run.json records no flags")):
        experiment.check_member_records([run0, run1])
    shutil.rmtree(run1 / checkpoint.SUBDIR)
    with pytest.raises(experiment.MemberError, match=re.escape(f"member {run1}: no checkpoint under")):
        experiment.verify_member_checkpoints([run0, run1])
    released = bundle.write(tmp_path / "bundle", weights={"w": np.ones(2, np.float32)}, spec={"name": "mlp"},
                            record={"seed": 0}, card="# card\n")  # A bundle's weights verify, no checkpoints.
    experiment.verify_member_checkpoints([released])
    weights = checkpoint.list_checkpoints(run0 / checkpoint.SUBDIR)[-1] / "model.npz"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(experiment.MemberError, match=re.escape(f"member {run0}: ") + ".*model.npz"):
        experiment.verify_member_checkpoints([run0])


def test_mimo_batches_repeat_and_shuffle_each_member_alike_for_a_seed():
    images = tf.reshape(tf.range(4 * 2 * 2 * 1, dtype=tf.float32), (4, 2, 2, 1))  # Image i holds 4i..4i+3.
    batch = {"features": images, "labels": tf.constant([0, 1, 2, 3])}
    fmt = method_lib.repeated_per_member_shuffles(repetitions=3, members=2)
    out = fmt(batch, tf.constant([7, 1], tf.int64))
    assert out["features"].shape == (12, 2, 2, 2) and out["labels"].shape == (12, 2)
    for m in range(2):  # Each member sees every example 3 times, its image matching its label.
        labels = out["labels"][:, m].numpy()
        assert sorted(labels.tolist()) == sorted([0, 1, 2, 3] * 3)
        np.testing.assert_array_equal(out["features"][:, 0, 0, m].numpy(), 4.0 * labels)
    assert not np.array_equal(out["labels"][:, 0], out["labels"][:, 1])  # Independent shuffles.
    again = fmt(batch, tf.constant([7, 1], tf.int64))
    np.testing.assert_array_equal(again["labels"], out["labels"])  # A function of the seed.


def test_stochastic_passes_are_members_of_one_tiled_pass():
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4),
                              ub.layers.MCDropout(0.5, seed=0), keras.layers.Dense(CLASSES)])
    x = np.random.default_rng(0).normal(size=(6, 5)).astype(np.float32)
    out = method_lib.stochastic_passes(3)(model, tf.constant(x)).numpy()
    assert out.shape == (6, 3, CLASSES)
    assert not np.allclose(out[:, 0], out[:, 1])  # Each pass its own masks ...
    no_dropout = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4), keras.layers.Dense(CLASSES)])
    same = method_lib.stochastic_passes(3)(no_dropout, tf.constant(x)).numpy()
    for p in range(3):  # ... and pass p of example b is the model on example b.
        np.testing.assert_allclose(same[:, p], no_dropout(x).numpy(), rtol=1e-6)


def test_learning_rate_scales_multiply_each_variables_step():
    strategy = distribution.get_strategy("cpu")
    x = np.random.default_rng(0).normal(size=(8, 5)).astype(np.float32)
    batch = {"features": x, "labels": np.arange(8) % CLASSES}

    def one_sgd_step(scales):
        with strategy.scope():
            model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4), keras.layers.Dense(CLASSES)])
            rng = np.random.default_rng(1)
            model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in model.weights])
            optimizer = keras.optimizers.SGD(0.1)
        before = [np.asarray(v) for v in model.trainable_variables]
        train = loop.make_train_fn(model, optimizer, strategy, 8, learning_rate_scales=scales)
        train(iter(strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(batch).repeat())), 1)
        return [np.asarray(v) - b for v, b in zip(model.trainable_variables, before)]

    plain = one_sgd_step(None)
    scaled = one_sgd_step(lambda model: [0.5, 0.0, 1.0, 1.0])
    np.testing.assert_allclose(scaled[0], 0.5 * plain[0], atol=1e-6)  # Half the step (float32 weights) ...
    assert not scaled[1].any() and plain[1].any()  # ... no step ...
    np.testing.assert_array_equal(scaled[2], plain[2])  # ... the same step.
    with pytest.raises(ValueError, match="gave 1 multipliers for 4 trainable variables"):
        one_sgd_step(lambda model: [1.0])


def test_annealed_kl_weight_ramps_linearly_counting_the_step_taken_and_divides_by_n():
    model = dense_model()
    model(np.zeros((1, 5), np.float32))

    def terms(step, epochs=2):
        context = method_lib.TrainContext(tf.constant(step, tf.int64), steps_per_epoch=4, num_train_examples=100)
        extra = method_lib.annealed_kl(lambda m: tf.constant(6.0), epochs)(model, context)
        return {k: float(v) for k, v in extra.items()}

    for step, weight in ((0, 1 / 8), (3, 4 / 8), (6, 7 / 8), (7, 1.0), (50, 1.0)):  # min(1, (t + 1) / (4 x 2))
        assert terms(step)["kl"] == pytest.approx(weight * 6.0 / 100, rel=1e-6), step
    assert terms(0, epochs=0)["kl"] == pytest.approx(6.0 / 100)  # No annealing: full weight at once.
    assert terms(0)["l2"] == pytest.approx(float(tf.add_n(model.losses))) and terms(0)["l2"] > 0  # L2 stays.
    with pytest.raises(ValueError, match="annealing_epochs must be >= 0"):
        terms(0, epochs=-1)


def test_annealed_kl_in_a_run_enters_the_loss_and_ramps_epoch_by_epoch(tmp_path):
    # A constant KL of 12 nats: train/kl is the last step's weight x 12 / 48 examples.
    method = Method("vi", extra_losses=method_lib.annealed_kl(lambda m: tf.constant(12.0), annealing_epochs=4))
    record, _ = fit(tmp_path, epochs=2, method=method)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["train/kl"] for line in lines] == pytest.approx([0.25 * 12 / 48, 0.5 * 12 / 48], rel=1e-6)
    assert record["train/loss"] == pytest.approx(
        record["train/negative_log_likelihood"] + record["train/l2"] + record["train/kl"], rel=1e-6)
