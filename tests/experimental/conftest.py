"""The experiments live beside the package (experimental/ at the repo root): import them from there."""
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
