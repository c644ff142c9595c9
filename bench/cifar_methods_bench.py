"""Cost of the CIFAR uncertainty methods against the deterministic WRN, measured side by side.

    flock /tmp/heavy.lock .venv/bin/python bench/cifar_methods_bench.py --depth 16 --width 2 --batch 64
    ... --only heteroscedastic sngp     (just those rows and the deterministic reference)

Every figure comes from the baselines' own step (`training.loop.make_train_fn` with the
method's seams, or `make_predict_fn` with its predictor) on synthetic 32x32x3 batches,
timed as the best of --rounds calls each (one method after another, so run it on an idle machine):
  - BatchEnsemble (M members) training, member-examples/s (images x M) / deterministic
    images/s; target >= 0.8;
  - MIMO (M members, R batch repetitions) training, forward examples/s (images x R) /
    deterministic images/s; target >= 0.9;
  - an ensemble of M models evaluated, images/s / (deterministic eval images/s / M); >= 0.9;
  - MC dropout with N passes evaluated, images/s / (deterministic eval images/s / N); >= 0.9;
  - SNGP and heteroscedastic training, images/s / deterministic images/s; >= 0.8;
  - rank-1 BNN (M members) training, member-examples/s / deterministic images/s; >= 0.7;
  - variational inference (Flipout) training, images/s / deterministic images/s; >= 0.5.
"""
import functools
import argparse
import time

import numpy as np


def best_rate(fn, items_per_call, rounds):
    """Items per second of the fastest of `rounds` timed calls of `fn` (after one warm-up)."""
    fn()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return items_per_call / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=16)
    parser.add_argument("--width", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5, help="training steps per timed call")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--members", type=int, default=4, help="BatchEnsemble, ensemble and MC dropout size")
    parser.add_argument("--mimo_members", type=int, default=3)
    parser.add_argument("--repetitions", type=int, default=4, help="MIMO batch repetitions")
    parser.add_argument("--only", nargs="+", metavar="ROW",
                        help="measure only these rows (e.g. heteroscedastic) and their deterministic reference")
    args = parser.parse_args()

    import tensorflow as tf

    import uncertainty_baselines as ub
    from uncertainty_baselines.training import distribution, loop, method, method_flags, schedules

    strategy = distribution.get_strategy("cpu")
    loop.enable_determinism(0)
    rng = np.random.default_rng(0)
    batch = {"features": rng.standard_normal((args.batch, 32, 32, 3)).astype(np.float32),
             "labels": rng.integers(10, size=args.batch).astype(np.int32)}

    def stream(rows):
        first = {k: v[:rows] for k, v in batch.items()}
        return strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(first).repeat().prefetch(2))
    eval_batch = {**batch, "id": np.arange(args.batch), "mask": np.ones(args.batch, np.float32)}
    wrn = dict(input_shape=(32, 32, 3), depth=args.depth, width_multiplier=args.width, num_classes=10,
               l2=2e-4, seed=0)

    def train_rate(name, kwargs, examples_per_image, seams=method.DETERMINISTIC_SEAMS):
        """Training rate of the script's step: a step reads batch / R examples (R = the
        method's batch_repetitions), so every method runs `--batch` forward rows per member."""
        images = args.batch // seams.batch_repetitions
        with strategy.scope():
            model = ub.models.get(name, **kwargs)
            optimizer = schedules.nesterov_sgd(0.01)
        train = loop.make_train_fn(model, optimizer, strategy, images, loss=seams.loss,
                                   extra_losses=seams.extra_losses, format_batch=seams.format_batch,
                                   learning_rate_scales=seams.learning_rate_scales,
                                   steps_per_epoch=100, num_train_examples=50_000)
        iterator = iter(stream(images))
        return best_rate(lambda: train(iterator, args.steps), images * args.steps * examples_per_image,
                         args.rounds)

    def eval_rate(models, predict=method.single_pass):
        fns = [loop.make_predict_fn(m, strategy, predict) for m in models]
        return best_rate(lambda: [fn(eval_batch) for fn in fns], args.batch, args.rounds)

    mimo = method.Method("mimo", format_batch=method.repeated_per_member_shuffles(args.repetitions, args.mimo_members),
                         batch_repetitions=args.repetitions, loss=method.summed_member_cross_entropy)
    batchensemble = method.Method("batchensemble", learning_rate_scales=method_flags.fast_weight_scales(0.5))
    rank1 = method.Method("rank1", extra_losses=method.annealed_kl(ub.layers.rank1_kl, 200))
    vi = method.Method("vi", extra_losses=method.annealed_kl(
        functools.partial(ub.layers.flipout_kl, tied_mean=True), 200))
    plain = functools.cache(lambda: [ub.models.get("wide_resnet", **{**wrn, "seed": i}) for i in range(args.members)])

    def dropout_eval(filterwise):
        model = ub.models.get("wide_resnet_mc_dropout", **wrn, dropout_rate=0.1, filterwise=filterwise)
        return eval_rate([model], method.stochastic_passes(args.members)) * args.members

    references = {"train": lambda: train_rate("wide_resnet", wrn, 1), "eval": lambda: eval_rate(plain()[:1])}
    rows = {  # name: (label, rate, reference, target); rates are measured only for the rows asked for
        "batchensemble": (f"BatchEnsemble M={args.members} train, member-examples/s", lambda: train_rate(
            "wide_resnet_batchensemble", {**wrn, "ensemble_size": args.members}, args.members, batchensemble),
            "train", 0.8),
        "mimo": (f"MIMO M={args.mimo_members} R={args.repetitions} train, forward examples/s", lambda: train_rate(
            "wide_resnet_mimo", {**wrn, "ensemble_size": args.mimo_members}, args.repetitions, mimo), "train", 0.9),
        "ensemble": (f"ensemble of {args.members} eval, images/s x {args.members}",
                     lambda: eval_rate(plain()) * args.members, "eval", 0.9),
        "dropout": (f"MC dropout {args.members} passes eval, images/s x {args.members}",
                    lambda: dropout_eval(False), "eval", 0.9),
        "filterwise": (f"  filter-wise, {args.members} passes eval, images/s x {args.members}",
                       lambda: dropout_eval(True), "eval", 0.9),
        "sngp": ("SNGP train, images/s", lambda: train_rate("wide_resnet_sngp", wrn, 1), "train", 0.8),
        "heteroscedastic": ("heteroscedastic (10,000 MC samples) train, images/s",
                            lambda: train_rate("wide_resnet_heteroscedastic", wrn, 1), "train", 0.8),
        "rank1": (f"rank-1 BNN M={args.members} train, member-examples/s", lambda: train_rate(
            "wide_resnet_rank1", {**wrn, "ensemble_size": args.members}, args.members, rank1), "train", 0.7),
        "variational": ("variational (Flipout) train, images/s",
                        lambda: train_rate("wide_resnet_variational", wrn, 1, vi), "train", 0.5),
    }
    unknown = sorted(set(args.only or ()) - set(rows))
    if unknown:
        parser.error(f"--only: unknown rows {unknown}; valid: {sorted(rows)}")
    chosen = [rows[name] for name in rows if not args.only or name in args.only]
    reference = {kind: rate() for kind, rate in references.items() if any(row[2] == kind for row in chosen)}
    print(f"WRN-{args.depth}-{args.width}, batch {args.batch}: deterministic "
          + ", ".join(f"{kind} {rate:.1f} images/s" for kind, rate in reference.items()))
    for label, measure, kind, target in chosen:
        rate = measure()
        ratio = rate / reference[kind]
        print(f"{label:<60} {rate:9.1f}  ratio {ratio:.3f}  target >= {target}  "
              f"{'ok' if ratio >= target else 'BELOW'}", flush=True)


if __name__ == "__main__":
    main()
