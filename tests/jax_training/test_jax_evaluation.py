"""jax_training.evaluation: an OOD set holds only its OOD examples and is scored against the
test set's predictions (predicted once), with the same metrics as scoring the two together;
its predictions come out in-distribution first; padded rows never count."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from uncertainty_baselines import metrics as ub_metrics
from uncertainty_baselines.jax_training import evaluation, loop


def predict(params, images):
    """Logits read off the images' first pixels: a model whose outputs the test controls."""
    logits = images.reshape(images.shape[0], -1)[:, :3] * params
    return {"logits": logits, "probs": jax.nn.softmax(logits)}


def batches(features, labels, batch_size=4, **extra):
    """Padded-and-masked batches, as `jax_training.data.eval_batches` yields them."""
    n = len(labels)
    for start in range(0, n, batch_size):
        rows = slice(start, min(start + batch_size, n))
        pad = batch_size - (rows.stop - rows.start)
        batch = {"features": features[rows], "labels": labels[rows], "id": np.arange(n)[rows],
                 "mask": np.ones(rows.stop - rows.start, np.int32), **{k: v[rows] for k, v in extra.items()}}
        yield {k: np.concatenate([v, np.zeros((pad, *v.shape[1:]), v.dtype)]) for k, v in batch.items()}


def test_an_ood_set_is_scored_against_the_test_sets_single_pass():
    rng = np.random.default_rng(0)
    clean_x, ood_x = rng.normal(size=(10, 2, 2, 1)).astype(np.float32), rng.normal(size=(7, 2, 2, 1)).astype(np.float32)
    clean_y = rng.integers(0, 3, 10).astype(np.int32)
    passes, saved = [], {}

    def test():
        passes.append("test")
        return batches(clean_x, clean_y)

    def ood():
        return batches(ood_x, np.full(7, -1, np.int32), is_in_distribution=np.zeros(7, np.int32))

    flat, _, curves = evaluation.evaluate(predict, jnp.float32(2.0), loop.make_mesh(1), num_classes=3, test=test,
                                          ood={"noise": ood}, ood_kinds=("msp", "entropy"),
                                          on_predictions=lambda kind, key, arrays: saved.update({kind: arrays}))
    assert passes == ["test"] and flat["test/num_examples"] == 10

    logits = 2.0 * np.concatenate([clean_x, ood_x]).reshape(17, -1)[:, :3]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    is_ood = np.r_[np.zeros(10, bool), np.ones(7, bool)]
    for kind, prefix in (("msp", "ood/noise"), ("entropy", "ood/noise_entropy")):
        expected = ub_metrics.OODMetrics()
        expected.add_batch(ub_metrics.ood_score(probs, kind), is_ood=is_ood)
        assert flat[f"{prefix}_auroc"] == pytest.approx(expected.result()["auroc"])
    assert (curves["roc"]["noise"]["num_in"], curves["roc"]["noise"]["num_ood"]) == (10, 7)

    ood_set = saved["ood"]
    np.testing.assert_array_equal(ood_set["is_in_distribution"], (~is_ood).astype(np.int32))
    np.testing.assert_array_equal(ood_set["id"], np.arange(17))
    np.testing.assert_allclose(ood_set["logits"], logits, rtol=1e-6)


def test_an_ood_set_with_in_distribution_examples_is_refused():
    x = np.zeros((3, 2, 2, 1), np.float32)
    with pytest.raises(ValueError, match="the OOD set noise holds in-distribution examples"):
        evaluation.evaluate(predict, jnp.float32(1.0), loop.make_mesh(1), num_classes=3,
                            test=lambda: batches(x, np.zeros(3, np.int32)),
                            ood={"noise": lambda: batches(x, np.zeros(3, np.int32),
                                                          is_in_distribution=np.ones(3, np.int32))})
