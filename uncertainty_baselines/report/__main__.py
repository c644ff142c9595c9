"""python -m uncertainty_baselines.report RUN_DIR [RUN_DIR ...] --out report.html"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from uncertainty_baselines import report


def main(argv: Sequence[str] | None = None) -> int:
    """Write the report; exit status 2 with one line per bad folder when it cannot."""
    parser = argparse.ArgumentParser(prog="python -m uncertainty_baselines.report", description=report.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders (a baseline's --output_dir)")
    parser.add_argument("--out", required=True, help="the HTML file to write")
    parser.add_argument("--title", default=None, help="the page's title")
    args = parser.parse_args(argv)
    try:
        runs = report.load_runs(args.run_dirs)
    except report.ReportError as e:
        print(f"report: {e}", file=sys.stderr)
        return 2
    for warning in report.data_warnings(runs):
        print(f"report: warning: {warning}", file=sys.stderr)
    page = report.render_report(runs, title=args.title)
    out = report.write_page(page, args.out)
    print(f"wrote {out} ({len(runs)} runs, {page.count('<img ')} pictures, {len(page) / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
