r"""Writes the results table of baselines/uci/README.md from finished runs.

Reads ``<runs_dir>/<method>/<dataset>/run.json`` (as written by ``run_all.sh``) and puts,
for every dataset and method, our test log-likelihood and RMSE (mean +- standard error
over the standard splits, original units; CRPS and 95% interval coverage beside them)
next to the published figures, between the README's table markers. "ok" means ours is
better than the published mean or within one of our standard errors of it (the published
figures are rounded to 0.01, so distances count from published +- 0.005).

  .venv/bin/python baselines/uci/make_table.py --runs_dir=runs/uci
"""
import json
import os
import pathlib
import re

from absl import app, flags

flags.DEFINE_string("runs_dir", "runs/uci", "Folder with <method>/<dataset>/run.json.")
flags.DEFINE_string("readme", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                           "README.md"), "README whose table is replaced.")
FLAGS = flags.FLAGS

DATASETS = ("uci_boston_housing", "uci_concrete", "uci_energy", "uci_kin8nm", "uci_naval",
            "uci_power_plant", "uci_protein", "uci_wine", "uci_yacht")
METHODS = ("deterministic", "ensemble", "dropout", "variational_inference")
# Published test (log-likelihood, RMSE), ../shared/reference/BASELINES.md: MC dropout from
# Gal & Ghahramani 2016; deep ensembles of 5 from Lakshminarayanan et al. 2017 (their NLL
# negated).
PUBLISHED = {
    "dropout": dict(zip(DATASETS, [(-2.46, 2.97), (-3.04, 5.23), (-1.99, 1.66), (0.95, 0.10),
                                   (3.80, 0.01), (-2.80, 4.02), (-2.89, 4.36), (-0.93, 0.62),
                                   (-1.55, 1.11)])),
    "ensemble": dict(zip(DATASETS, [(-2.41, 3.28), (-3.06, 6.03), (-1.38, 2.09), (1.20, 0.09),
                                    (5.63, 0.00), (-2.79, 4.11), (-2.83, 4.71), (-0.94, 0.64),
                                    (-1.18, 1.58)])),
}
START, END = "<!-- results table: start -->", "<!-- results table: end -->"


# The published figures are rounded to 0.01: anything within half of that is equal to them.
ROUNDING = 0.005


def matches(ours: float, se: float, published: float, higher_is_better: bool) -> bool:
    """Better than the published figure, or within one of our standard errors of it
    (distances measured from the rounding interval published +- 0.005)."""
    better = ours >= published if higher_is_better else ours <= published
    return better or max(abs(ours - published) - ROUNDING, 0.0) <= se


def cell(metrics: dict, key: str, digits: int) -> str:
    return f"{metrics[f'test/{key}']:.{digits}f} ± {metrics[f'test/{key}_se']:.{digits}f}"


def verdicts(method: str, dataset: str, metrics: dict) -> tuple[bool, bool] | None:
    """(LL ok, RMSE ok) against the published figures, None when there are none."""
    published = PUBLISHED.get(method, {}).get(dataset)
    if published is None:
        return None
    return (matches(metrics["test/log_likelihood"], metrics["test/log_likelihood_se"],
                    published[0], True),
            matches(metrics["test/rmse"], metrics["test/rmse_se"], published[1], False))


def row(method: str, dataset: str, record: dict) -> str:
    m = record["metrics"]
    digits = 3 if dataset in ("uci_kin8nm", "uci_naval") else 2
    published, verdict = PUBLISHED.get(method, {}).get(dataset), verdicts(method, dataset, m)
    if published:
        verdict = " / ".join("ok" if ok else "worse" for ok in verdict)
        published = f"{published[0]:.2f} / {published[1]:.2f}"
    return (f"| {dataset} | {method} | {cell(m, 'log_likelihood', digits)} | "
            f"{cell(m, 'rmse', digits)} | {published or '—'} | {verdict or '—'} | "
            f"{cell(m, 'crps', digits)} | {m['test/interval_coverage_95']:.3f} | "
            f"{len(record['splits'])} | {record['wall_time_s']:.0f} |")


def table(runs_dir: pathlib.Path) -> str:
    lines = ["| dataset | method | test LL | test RMSE | published LL / RMSE | LL / RMSE vs "
             "published | CRPS | 95% coverage | splits | wall s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    missing, both_ok = [], {method: [] for method in PUBLISHED}
    for dataset in DATASETS:
        for method in METHODS:
            path = runs_dir / method / dataset / "run.json"
            if not path.is_file():
                missing.append(f"{method}/{dataset}")
                continue
            record = json.loads(path.read_text())
            lines.append(row(method, dataset, record))
            if method in PUBLISHED:
                both_ok[method].append(all(verdicts(method, dataset, record["metrics"])))
    lines.append("")
    lines += [f"{method}: LL and RMSE both ok on {sum(oks)} of {len(oks)} datasets run."
              for method, oks in both_ok.items()]
    if missing:
        lines.append(f"Not run: {', '.join(missing)}.")
    return "\n".join(lines)


def main(argv):
    del argv
    readme = pathlib.Path(FLAGS.readme)
    text = readme.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{readme} lacks the markers {START!r} and {END!r}.")
    new = re.sub(re.escape(START) + ".*?" + re.escape(END),
                 lambda _: f"{START}\n{table(pathlib.Path(FLAGS.runs_dir))}\n{END}", text,
                 flags=re.S)
    readme.write_text(new)
    print(table(pathlib.Path(FLAGS.runs_dir)))


if __name__ == "__main__":
    app.run(main)
