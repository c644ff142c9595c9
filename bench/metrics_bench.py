"""Benchmark of ub.metrics: streaming classification metrics and exact AUROC.

Run (about 10 s of CPU): flock /tmp/ub_heavy.lock .venv/bin/python bench/metrics_bench.py

1. All of ClassificationMetrics (accuracy, NLL, Brier, ECE, MCE, RMSCE, classwise ECE, with
   input validation) over 10M predictions of 10 classes fed in batches of 10,000, against
   two plain NumPy passes over the same arrays: a bare read (sum of probs and labels) and
   the plain top-label pass (argmax, max, p(y)) that any of these metrics needs. The
   batches are generated once (a small pool, cycled) so generation is not timed and memory
   stays small. Target: at most 2x the plain top-label pass.
2. Exact AUROC (sort-based, ties half credit) over 1M scores. Target: under 1 second.
Each timing is the best of ``--repeats`` interleaved runs (wall clock).
"""
import argparse
import resource
import time

import numpy as np

import uncertainty_baselines as ub


def batch_pool(num_batches: int, batch_size: int, num_classes: int, seed: int):
    """A few distinct float32 softmax batches with labels drawn from them."""
    rng = np.random.default_rng(seed)
    pool = []
    for _ in range(num_batches):
        logits = rng.normal(size=(batch_size, num_classes)).astype(np.float32) * 3
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        labels = (rng.random((batch_size, 1)) > probs.cumsum(1)).sum(1).clip(0, num_classes - 1)
        pool.append((probs, labels))
    return pool


def bare_read(batches):
    total = 0.0
    for probs, labels in batches:
        total += float(probs.sum()) + float(labels.sum())
    return total


def plain_top_label(batches):
    correct = 0
    for probs, labels in batches:
        predictions = probs.argmax(axis=1)
        confidence = probs.max(axis=1)
        p_true = probs[np.arange(len(labels)), labels]
        correct += int((predictions == labels).sum()) + int(confidence.size + p_true.size)
    return correct


def streaming_metrics(batches):
    metrics = ub.metrics.ClassificationMetrics(num_bins=15)
    for probs, labels in batches:
        metrics.add_batch(probs, label=labels)
    return metrics.result()


def best_time(fn, *args, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_predictions", type=int, default=10_000_000)
    parser.add_argument("--batch_size", type=int, default=10_000)
    parser.add_argument("--num_classes", type=int, default=10)
    parser.add_argument("--num_scores", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    pool = batch_pool(16, args.batch_size, args.num_classes, seed=0)
    num_batches = args.num_predictions // args.batch_size
    batches = [pool[i % len(pool)] for i in range(num_batches)]
    timings = {"bare read": [], "plain top-label": [], "ClassificationMetrics": []}
    fns = {"bare read": bare_read, "plain top-label": plain_top_label,
           "ClassificationMetrics": streaming_metrics}
    for _ in range(args.repeats):  # interleaved, so load changes hit every variant alike
        for name, fn in fns.items():
            timings[name].append(best_time(fn, batches, repeats=1))
    best = {name: min(t) for name, t in timings.items()}
    print(f"{args.num_predictions:,} predictions x {args.num_classes} classes, batches of "
          f"{args.batch_size:,} (float32):")
    for name, seconds in best.items():
        print(f"  {name:<22} {seconds:7.3f} s")
    print(f"  ratio ClassificationMetrics / plain top-label pass: "
          f"{best['ClassificationMetrics'] / best['plain top-label']:.2f} (target <= 2)")
    print(f"  ratio ClassificationMetrics / bare read pass:       "
          f"{best['ClassificationMetrics'] / best['bare read']:.1f}")
    print(f"  result: {streaming_metrics(batches[:1])}")

    rng = np.random.default_rng(1)
    labels = rng.random(args.num_scores) < 0.5
    scores = rng.normal(size=args.num_scores) + labels
    seconds = best_time(ub.metrics.auroc, scores, labels, repeats=args.repeats)
    print(f"exact AUROC over {args.num_scores:,} scores: {seconds:.3f} s (target < 1 s)")
    ood = ub.metrics.OODMetrics()
    ood.add_batch(scores, is_ood=labels)
    seconds = best_time(ood.result, repeats=args.repeats)
    print(f"OODMetrics.result (AUROC, 2 x AUPR, FPR95) over {args.num_scores:,}: {seconds:.3f} s")
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
