"""Compare runs on one static page: reliability, corruption, OOD and training pictures.

    python -m uncertainty_baselines.report RUN_DIR [RUN_DIR ...] --out report.html

One self-contained HTML file (inline CSS, PNGs as data URIs; no script, font or network
access) drawn from the run folders alone: run.json (command, commit, data fingerprint,
final metrics), flags.json, metrics.jsonl (training and evaluation curves) and
curves.jsonl (reliability bins and ROC points recorded by the evaluation; older runs lack
it and the page says which pictures are unavailable for them). Runs evaluated on different
data are put in separate groups, marked in the table, and never drawn in one picture.
"""
from uncertainty_baselines.report.page import availability, data_warnings, render_report, write_page, write_report
from uncertainty_baselines.report.runs import ReportError, RunData, load_run, load_runs

__all__ = ["ReportError", "RunData", "availability", "data_warnings", "load_run", "load_runs",
           "render_report", "write_page", "write_report"]
