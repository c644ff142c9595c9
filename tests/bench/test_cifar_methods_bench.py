"""bench/cifar_methods_bench.py runs every row of issue 10's speed targets on a tiny WRN and
prints one ratio per row; a row name it does not know is refused."""
import pathlib
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow
ROOT = pathlib.Path(__file__).resolve().parents[2]


def bench(*args):
    return subprocess.run([sys.executable, str(ROOT / "bench" / "cifar_methods_bench.py"), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)


def test_tiny_bench_prints_a_ratio_per_row():
    out = bench("--depth", "10", "--width", "1", "--batch", "8", "--steps", "1", "--rounds", "1",
                "--members", "2", "--mimo_members", "2", "--repetitions", "2",
                "--only", "batchensemble", "mimo", "ensemble", "dropout")
    assert out.returncode == 0, out.stderr[-2000:]
    rows = re.findall(r"^(\S.*?)\s+([\d.]+)\s+ratio ([\d.]+)\s+target >= ([\d.]+)", out.stdout, re.M)
    assert [r[0].split()[0] for r in rows] == ["BatchEnsemble", "MIMO", "ensemble", "MC"], out.stdout
    assert all(float(rate) > 0 and float(ratio) > 0 for _, rate, ratio, _ in rows)
    assert re.search(r"deterministic train [\d.]+ images/s, eval [\d.]+ images/s", out.stdout), out.stdout


def test_unknown_row_is_refused():
    out = bench("--only", "nope")
    assert out.returncode != 0 and "unknown rows ['nope']" in out.stderr
