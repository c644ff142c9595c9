"""python -m uncertainty_baselines.report: the page drawn from run folders alone, older runs
degrading gracefully, different data marked, bad folders refused with a clear message; and
the page as a person sees it in headless Chromium."""
import html.parser
import json
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import browser
import tiny_runs
from uncertainty_baselines import report
from uncertainty_baselines.report import __main__ as cli


class Page(html.parser.HTMLParser):
    """The parts of a report page the tests look at: images, headline table rows, links."""

    def __init__(self, text):
        super().__init__()
        self.images, self.rows, self.external, self.scripts = [], [], [], 0
        self._table, self._row, self._cell = None, None, None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs)
        if tag == "script":
            self.scripts += 1
        if tag in ("link", "iframe", "object", "embed") or any(
                re.match(r"(https?:)?//", attrs.get(a) or "") for a in ("src", "href")):
            self.external.append((tag, attrs))
        if tag == "table":
            self._table = attrs.get("id")
        if tag == "tr" and self._table == "headline":
            self._row = []
        if tag in ("td", "th") and self._row is not None:
            self._cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append(self._cell.strip())
            self._cell = None
        if tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None
        if tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return [tiny_runs.write_run(root / "det-seed0", seed=0),
            tiny_runs.write_run(root / "det-seed1", seed=1, severities=(1, 2, 3, 4, 5))]


@pytest.fixture(scope="module")
def two_run_report(two_runs, tmp_path_factory):
    """The report of the two runs, written by the command line (in this process)."""
    out = tmp_path_factory.mktemp("report") / "report.html"
    assert cli.main([*map(str, two_runs), "--out", str(out), "--title", "Two tiny runs"]) == 0
    return out


def test_two_runs_every_picture_drawn_from_the_folders(two_runs, two_run_report, capsys):
    text = two_run_report.read_text()
    assert "<title>Two tiny runs</title>" in text
    page = Page(text)
    headline = {row[0]: row for row in page.rows[1:]}
    assert set(headline) == {"det-seed0", "det-seed1"}
    header = page.rows[0]
    acc = header.index("acc")
    assert "ECE corrupted" in header and "mnist AUROC" in " ".join(header)
    for run in two_runs:
        metrics = json.loads((run / "run.json").read_text())["metrics"]
        assert headline[run.name][acc] == f"{metrics['test/accuracy']:.4f}"
    # 2 x (clean, pooled corrupted) reliability diagrams, severity, per-type, 3 per-type x
    # severity (seed 1 has 5 severities), one ROC figure (mnist, 2 kinds), training curves.
    assert len(page.images) == 4 + 1 + 1 + 3 + 1 + 1
    assert all(img["src"].startswith("data:image/png;base64,") and img.get("alt") for img in page.images)
    assert not page.external and page.scripts == 0 and "@import" not in text and "url(" not in text
    for run in report.load_runs(two_runs):
        assert set(report.availability(run).values()) <= {"yes", "yes (3 evaluations)"}
    assert "command not recorded" not in text and "Different" not in text


def test_reliability_bins_and_roc_are_the_recorded_ones(two_runs):
    run = report.load_run(two_runs[0])
    entry = run.last_curves["reliability"]["test"]
    from uncertainty_baselines.report import figures
    assert figures.expected_calibration_error(entry) == pytest.approx(run.metrics["test/ece"], abs=1e-5)
    roc = run.last_curves["roc"]["mnist"]
    assert np.trapezoid(roc["tpr"], roc["fpr"]) == pytest.approx(run.metrics["ood/mnist_auroc"], abs=5e-3)
    pooled = figures.pool_reliability([e for k, e in run.corrupted_curves["reliability"].items() if k != "test"])
    assert sum(pooled["count"]) == 4 * 300


def test_a_shifted_test_set_gets_its_reliability_diagram(tmp_path):
    run = tiny_runs.write_run(tmp_path / "with-shift", epochs=1, severities=(), shifted=True)
    assert set(report.load_run(run).last_curves["reliability"]) == {"test", "shifted_v2"}
    page = Page(report.render_report(report.load_runs([run])))
    assert [img["alt"] for img in page.images if img["alt"].startswith("reliability")] == [
        "reliability diagram of with-shift on the clean test set", "reliability diagram of with-shift on shifted_v2"]


def test_older_runs_degrade_gracefully_and_say_what_is_missing(two_runs, tmp_path):
    old = tiny_runs.write_run(tmp_path / "old-run", seed=2, with_curves=False, with_command=False)
    no_ood = tiny_runs.write_run(tmp_path / "no-ood", seed=3, ood=False, severities=())
    text = report.render_report(report.load_runs([two_runs[0], old, no_ood]))
    page = Page(text)
    assert "command not recorded (the run predates it)" in text and "--train_epochs=3" in text
    assert re.search(r"Reliability diagram unavailable for old-run: not recorded: the run has no curves.jsonl", text)
    assert re.search(r"No ROC curve for old-run: ROC curves not recorded.*AUROC is in the table", text)
    assert re.search(r"No ROC curve for no-ood: not evaluated on OOD sets", text)
    assert "Not evaluated on corrupted sets: no-ood" in text
    # The corruption pictures come from run.json's metrics, so the old run is in them.
    assert any("severity" in img["alt"] for img in page.images)
    availability = report.availability(report.load_run(old))
    assert availability["corruption"] == "yes" and availability["reliability diagram"].startswith("not recorded")


def test_different_data_is_marked_not_mixed(two_runs, tmp_path, capsys):
    other = tiny_runs.write_run(tmp_path / "on-cifar", dataset="cifar10", seed=0, epochs=2, severities=(1,))
    unfinished = tiny_runs.write_run(tmp_path / "running", seed=4, finished=False, epochs=2)
    out = tmp_path / "mixed.html"
    assert cli.main([*map(str, two_runs), str(other), str(unfinished), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "evaluated on 2 different data sets" in err and "A = fashion_mnist" in err and "B = cifar10" in err
    assert "running: unfinished, so no data fingerprint is recorded yet; put in group A" in err
    text = out.read_text()
    rows = {row[0]: row for row in Page(text).rows[1:]}
    assert rows["on-cifar"][2].endswith("B") and rows["det-seed0"][2].endswith("A")
    assert rows["running"][3].startswith("unfinished")
    assert "Data A: fashion_mnist" in text and "Data B: cifar10" in text
    # Each group's pictures are drawn separately: two training-curve figures.
    assert text.count("alt='training and evaluation curves'") == 2


def test_regression_runs(tmp_path):
    runs = [tiny_runs.write_regression_run(tmp_path / "uci" / name, seed=i) for i, name in enumerate(("a", "b"))]
    text = report.render_report(report.load_runs(runs))
    rows = Page(text).rows
    assert "LL" in rows[0] and "rmse" in rows[0]
    assert re.search(r"-1\.\d{4} ± 0\.\d{4}", text)
    assert "alt='results per split'" in text and "not applicable (regression)" in text


def test_bad_folders_are_refused_all_at_once(two_runs, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    started = tmp_path / "started"
    started.mkdir()
    (started / "flags.json").write_text("{}")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "run.json").write_text("{truncated")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    out = tmp_path / "never.html"
    args = [str(empty), str(started), str(broken), str(a_file), str(tmp_path / "absent"), str(two_runs[0]),
            str(two_runs[0])]
    assert cli.main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "cannot report on 6 of the given folders" in err
    assert f"{empty}: is not a run directory: it holds none of run.json, flags.json, metrics.jsonl" in err
    assert f"{started}: has no evaluations yet" in err
    assert f"{broken}: run record" in err and "not valid JSON" in err
    assert f"{a_file}: is not a directory" in err and "absent: does not exist" in err
    assert "given twice" in err
    assert not out.exists()


def test_command_line_entry_point(two_runs, tmp_path):
    out = tmp_path / "cli.html"
    done = subprocess.run([sys.executable, "-m", "uncertainty_baselines.report", str(two_runs[0]),
                           str(tmp_path / "typo"), "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and not out.exists()
    assert done.stderr.strip() == f"report: cannot report on 1 of the given folders:\n  {tmp_path / 'typo'}: does not exist"
    usage = subprocess.run([sys.executable, "-m", "uncertainty_baselines.report", "--out", str(out)],
                           capture_output=True, text=True, timeout=120)
    assert usage.returncode == 2 and "the following arguments are required: RUN_DIR" in usage.stderr


def test_the_page_in_headless_chromium(two_run_report, tmp_path):
    """Every image loads, the table shows both runs, nothing is fetched, and the screenshot
    shows the pictures (not a blank page)."""
    out = two_run_report
    loaded = browser.load(out, tmp_path)
    page = Page(loaded.dom)
    assert 'data-test-done="11"' in loaded.dom
    assert len(page.images) == 11
    bad = [img.get("alt") for img in page.images if img.get("data-test-loaded") != "yes"]
    assert not bad, f"images that did not load: {bad}"
    sizes = [tuple(map(int, img["data-test-size"].split("x"))) for img in page.images]
    assert all(w > 200 and h > 150 for w, h in sizes), sizes
    assert {row[0] for row in page.rows[1:]} == {"det-seed0", "det-seed1"}
    assert loaded.page_requests == []
    png = browser.screenshot(out, tmp_path / "report.png", height=2600)
    image = np.asarray(Image.open(png).convert("RGB"))
    assert image.shape[:2] == (2600, 1400)
    # Plots bring many colours and non-white area; a page of text alone has few of either.
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 500
    assert (image.min(axis=2) < 200).mean() > 0.05


def test_the_browser_check_sees_a_broken_image_and_a_fetch(tmp_path):
    """The negative control of the test above: a broken data URI and an external image."""
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><body><img alt='broken' src='data:image/png;base64,iVBORw0KGgo='>"
                    "<img alt='remote' src='https://example.com/x.png'></body></html>")
    loaded = browser.load(page, tmp_path)
    states = {img["alt"]: img["data-test-loaded"] for img in Page(loaded.dom).images}
    assert states == {"broken": "no", "remote": "no"}
    assert loaded.page_requests == ["https://example.com/x.png"]
