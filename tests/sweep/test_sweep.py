"""Sweeps: spaces expand deterministically, bad definitions are refused with a clear message
before anything runs, the runner runs one run after another under a lock and resumes
without repeating finished runs, prints one command per run for an array job, and collects
a table and a HiPlot page that works offline in headless Chromium."""
import csv
import json
import pathlib
import shlex
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import browser
from uncertainty_baselines import sweep
from uncertainty_baselines.sweep import __main__ as cli

FAKE_SCRIPT = '''
"""A stand-in baseline: absl flags, run.json like a UCI run; appends its folder to $COUNTER."""
import os, pathlib, sys
from absl import app, flags
flags.DEFINE_float("learning_rate", 0.01, "Adam learning rate.")
flags.DEFINE_integer("epochs", 10, "Epochs.")
flags.DEFINE_enum("dataset", "yacht", ["yacht", "boston"], "Data.")
flags.DEFINE_integer("fixed_flag", 0, "The same in every run.")
flags.DEFINE_string("output_dir", None, "Run folder.", required=True)
FLAGS = flags.FLAGS


def main(argv):
    out = pathlib.Path(FLAGS.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    held = "-"
    if os.environ.get("CHECK_LOCK"):  # Is the sweep's lock held while this run runs?
        import fcntl
        with open(os.environ["CHECK_LOCK"], "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = "free"
            except BlockingIOError:
                held = "held"
    with open(os.environ["COUNTER"], "a") as f:
        f.write(f"{out.name} lock={held}\\n")
    if str(FLAGS.learning_rate) in os.environ.get("FAIL_ON", "").split(","):
        sys.exit(3)
    from uncertainty_baselines.runs import run_record
    ll = -abs(FLAGS.learning_rate - 0.003) * 100 - 10 / FLAGS.epochs
    run_record.write_run_record(out, flags=FLAGS.flag_values_dict(), metrics={
        "validation/log_likelihood": ll, "validation/rmse": 1 - ll}, seed=0, data_fingerprint=FLAGS.dataset,
        wall_time_s=0.1)


if __name__ == "__main__":
    app.run(main)
'''


def definition(tmp_path, space="grid(dataset=['yacht', 'boston'], learning_rate=[1e-3, 1e-2], epochs=[10, 100])",
               fixed="{}", name="sweep_def.py"):
    script = tmp_path / "fake_train.py"
    script.write_text(FAKE_SCRIPT)
    path = tmp_path / name
    path.write_text(textwrap.dedent(f"""
        from uncertainty_baselines.sweep import *
        SWEEP = Sweep(script={str(script)!r}, space={space}, fixed={fixed},
                      metrics=("validation/log_likelihood", "validation/rmse"))
    """))
    return path


def counted(tmp_path):
    path = tmp_path / "counter"
    return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("COUNTER", str(tmp_path / "counter"))
    return tmp_path


def test_spaces_expand_deterministically():
    g = sweep.grid(dataset=["a", "b"], learning_rate=[1e-3, 1e-2, 1e-1])
    assert len(g) == 6 and g.points[1] == {"dataset": "a", "learning_rate": 1e-2}
    h1 = sweep.halton(16, seed=3, lr=sweep.LogUniform(1e-4, 1e-1), drop=sweep.Uniform(0.0, 0.5),
                      width=sweep.IntUniform(1, 4), act=sweep.Choice(["relu", "gelu"]))
    assert h1.points == sweep.halton(16, seed=3, lr=sweep.LogUniform(1e-4, 1e-1), drop=sweep.Uniform(0.0, 0.5),
                                     width=sweep.IntUniform(1, 4), act=sweep.Choice(["relu", "gelu"])).points
    lrs = np.log10([p["lr"] for p in h1.points])
    assert lrs.min() >= -4 and lrs.max() <= -1
    # Quasi-random: each of the 3 decades gets 16/3 +- 1 points; every width and activation is drawn.
    counts = np.histogram(lrs, bins=[-4, -3, -2, -1])[0]
    assert counts.min() >= 4 and counts.max() <= 7
    assert {p["width"] for p in h1.points} == {1, 2, 3, 4} and {p["act"] for p in h1.points} == {"relu", "gelu"}
    r = sweep.random_search(5, seed=1, lr=sweep.LogUniform(1e-4, 1e-1))
    assert r.points == sweep.random_search(5, seed=1, lr=sweep.LogUniform(1e-4, 1e-1)).points
    assert r.points != sweep.random_search(5, seed=2, lr=sweep.LogUniform(1e-4, 1e-1)).points
    p = sweep.product(sweep.grid(dataset=["a", "b"]), r)
    assert len(p) == 10 and p.names == ["dataset", "lr"]
    assert len(sweep.chain(g, sweep.grid(dataset=["c"]))) == 7


@pytest.mark.parametrize("build,message", [
    (lambda: sweep.grid(learning_rate=[]), "grid axis 'learning_rate' has no values: an empty grid makes no runs"),
    (lambda: sweep.grid(), "grid() needs at least one flag"),
    (lambda: sweep.grid(dataset="yacht"), "must be a list of values"),
    (lambda: sweep.halton(0, lr=sweep.Uniform(0, 1)), "positive integer"),
    (lambda: sweep.random_search(3, lr=0.1), "is not a distribution"),
    (lambda: sweep.random_search(3, lr=sweep.LogUniform(0, 1)), "LogUniform needs 0 < low < high"),
    (lambda: sweep.product(sweep.grid(a=[1]), sweep.grid(a=[2])), "swept by two spaces"),
])
def test_bad_spaces(build, message):
    with pytest.raises(sweep.SweepError) as info:
        build()
    assert message in str(info.value)


def test_bad_definitions_are_refused_before_anything_runs(env, capsys):
    out = env / "out"
    cases = [
        (definition(env, space="grid(learning_rate=[])", name="empty.py"), "an empty grid makes no runs"),
        (definition(env, space="grid(learning_rat=[1e-3], epochs=['ten'])", name="unknown.py"),
         "--learning_rat is not a flag of"),
        (definition(env, space="grid(learning_rate=[1e-3])", fixed="{'learning_rate': 0.1}", name="both.py"),
         "learning_rate are both fixed and swept"),
        (definition(env, space="grid(learning_rate=[1e-3])", fixed="{'output_dir': '/x'}", name="reserved.py"),
         "--output_dir is set by the runner"),
        (env / "absent.py", "no sweep definition at"),
    ]
    (env / "nosweep.py").write_text("X = 1\n")
    cases.append((env / "nosweep.py", "must define SWEEP = uncertainty_baselines.sweep.Sweep(...)"))
    for path, message in cases:
        assert cli.main(["run", str(path), "--out", str(out)]) == 2
        assert message in capsys.readouterr().err, message
    assert counted(env) == [] and not (out / "runs").exists()
    # An unknown flag is named with the closest valid one; a value its flag cannot parse too.
    assert cli.main(["run", str(env / "unknown.py"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "(did you mean --learning_rate?)" in err
    assert "flag --epochs=ten: invalid literal for int()" in err


def test_runs_one_after_another_under_the_lock_then_resumes(env, capsys, monkeypatch):
    path = definition(env, fixed="{'fixed_flag': 7}")
    out, lock = env / "out", env / "heavy.lock"
    monkeypatch.setenv("CHECK_LOCK", str(lock))
    monkeypatch.setenv("FAIL_ON", "0.01")  # the runs at learning rate 0.01 fail
    assert cli.main(["run", str(path), "--out", str(out), "--lock", str(lock)]) == 1
    first = counted(env)
    assert len(first) == 8 and all(line.endswith("lock=held") for line in first)
    text = capsys.readouterr().out
    assert "ran 4, skipped 0 finished, 4 failed" in text and "4 failed, 4 finished" in text
    plan = json.loads((out / "sweep.json").read_text())
    failed = {r["id"] for r in plan["runs"] if r["flags"]["learning_rate"] == 0.01}
    assert {p.stem for p in (out / "logs").glob("*.failed")} == failed
    log = (out / "logs" / f"{sorted(failed)[0]}.log").read_text()
    assert log.startswith("# ") and f"flock {lock} " in log.splitlines()[0]
    # Rerun once the cause is gone: only the 4 failed runs run again.
    monkeypatch.setenv("FAIL_ON", "")
    assert cli.main(["run", str(path), "--out", str(out), "--lock", str(lock), "--hold_lock"]) == 0
    again = counted(env)[8:]
    assert {line.split()[0] for line in again} == failed and all(line.endswith("lock=held") for line in again)
    assert "ran 4, skipped 4 finished, 0 failed" in capsys.readouterr().out
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == 8 and {r["status"] for r in rows} == {"finished"}
    assert list(rows[0])[:5] == ["run", "dataset", "learning_rate", "epochs", "status"]
    assert list(rows[0])[-1] == "fixed_flag" and {r["fixed_flag"] for r in rows} == {"7"}
    assert not list((out / "logs").glob("*.failed"))
    # A third start runs nothing.
    assert cli.main(["run", str(path), "--out", str(out)]) == 0
    assert len(counted(env)) == 12 and "ran 0, skipped 8 finished, 0 failed" in capsys.readouterr().out


def test_a_partly_finished_sweep_resumes_without_repeating_runs(env, capsys):
    path = definition(env)
    out = env / "out"
    runs = sweep.plan(sweep.load(path), out)
    # Runs 0-2 finished; run 3 was killed mid-way (its folder exists, no run.json).
    assert cli.main(["run", str(path), "--out", str(out), "--index", "0", "--index", "1", "--index", "2"]) == 0
    runs[3].output_dir.mkdir(parents=True)
    statuses = [sweep.status(r, out.resolve()) for r in runs]
    assert statuses == ["finished"] * 3 + ["started"] + ["pending"] * 4
    capsys.readouterr()
    assert cli.main(["run", str(path), "--out", str(out)]) == 0
    names = [line.split()[0] for line in counted(env)]
    assert len(names) == 8 and len(set(names)) == 8  # each run exactly once
    assert "ran 5, skipped 3 finished" in capsys.readouterr().out


def test_run_ids_ignore_the_data_folder_and_survive_added_points(env):
    base = sweep.Sweep(script="x.py", space=sweep.grid(learning_rate=[1e-3, 1e-2]), fixed={"epochs": 10})
    wider = sweep.Sweep(script="x.py", space=sweep.grid(learning_rate=[1e-3, 3e-3, 1e-2]), fixed={"epochs": 10})
    ids = [r.id for r in sweep.plan(base, env, {"data_dir": "/data/a"})]
    assert ids == [r.id for r in sweep.plan(base, env, {"data_dir": "/elsewhere"})]
    assert set(ids) < {r.id for r in sweep.plan(wider, env)}
    assert ids != [r.id for r in sweep.plan(base, env, {"seed": 1})]


def test_commands_for_an_array_job(env, capsys):
    path = definition(env)
    out = env / "out"
    assert cli.main(["commands", str(path), "--out", str(out), "--lock", "/tmp/ub_heavy.lock"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 8 and all("flock /tmp/ub_heavy.lock" in line for line in lines)
    # Task 3 of an array job runs line 3 as is.
    done = subprocess.run(["bash", "-c", lines[3].replace("flock /tmp/ub_heavy.lock ", "")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert cli.main(["commands", str(path), "--out", str(out)]) == 0
    pending = capsys.readouterr().out.splitlines()
    assert len(pending) == 7 and lines[3].split()[-1] not in " ".join(pending)
    argv = shlex.split(lines[0].split("&&", 1)[1])
    assert argv[-1].startswith(f"--output_dir={out.resolve() / 'runs'}")


def test_collect_writes_table_and_offline_hiplot_page(env, tmp_path, capsys):
    path = definition(env)
    out = env / "out"
    assert cli.main(["run", str(path), "--out", str(out)]) == 0
    assert "warning" not in capsys.readouterr().err
    misspelt = env / "misspelt.py"
    misspelt.write_text(path.read_text().replace('"validation/rmse"', '"validation/rmse_95"'))
    assert cli.main(["collect", str(misspelt), "--out", str(out)]) == 0
    assert "warning: metric 'validation/rmse_95' is in no finished run's run.json" in capsys.readouterr().err
    assert cli.main(["collect", str(path), "--out", str(out)]) == 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    best = max(rows, key=lambda r: r["validation/log_likelihood"])
    assert best["learning_rate"] == 0.001 and best["epochs"] == 100
    page = (out / "sweep.html").read_text()
    assert "fonts.googleapis.com/css?family=Lato:400,700,400italic&display=swap\\\"}" not in page
    assert "<title>Sweep: " in page and '<script src="' not in page and "<link rel=\"stylesheet\"" not in page
    loaded = browser.load(out / "sweep.html", tmp_path, wait_ms=5000)
    assert loaded.page_requests == []
    # HiPlot drew its parallel plot (an svg with an axis per column) and its table of 8 rows.
    for column in ("learning_rate", "epochs", "validation/log_likelihood", "validation/rmse"):
        assert column in loaded.dom
    assert loaded.dom.count("<svg") >= 1 and "Showing 1 to 8 of 8 entries" in loaded.dom


def test_sweep_definitions_of_the_baselines_expand():
    root = pathlib.Path(__file__).resolve().parents[2] / "baselines"
    found = sorted(root.glob("*/sweeps/*.py"))
    assert {p.parent.parent.name for p in found} >= {"uci", "cifar", "clinc_intent"}
    for path in found:
        definition_ = sweep.load(path)
        runs = definition_.runs({"data_dir": "/data"})
        assert runs and definition_.script_path.is_file() and definition_.metrics, path


@pytest.mark.integration
def test_real_uci_sweep_flags_are_checked_against_the_script(tmp_path, shared_data):
    """The UCI definition's 18 runs parse with baselines/uci/deterministic.py's own flags
    (one import of the script); a 19th with a misspelt dataset is the only one refused."""
    root = pathlib.Path(__file__).resolve().parents[2]
    definition_ = sweep.load(root / "baselines/uci/sweeps/lr_epochs.py")
    runs = definition_.runs({"data_dir": str(shared_data)})
    with pytest.raises(sweep.SweepError) as info:
        sweep.check_flags(definition_, [*runs, {**runs[0], "dataset": "uci_yaht"}], sys.executable)
    message = str(info.value)
    assert "flag --dataset=uci_yaht: value should be one of" in message and "(run 18: " in message
    assert message.count("\n  ") == 1  # the 18 runs of the definition are fine
