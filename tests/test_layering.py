"""The package's layers import only downwards: runs <- metrics, datasets, layers <- models <- training.

Every `import` in the package (module level or inside a function, absolute or relative) is checked, so a lazy
upward import is caught as well as a top-level one.
"""
import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "uncertainty_baselines"
# A subpackage may import its own modules and those of strictly lower rank.
RANK = {"runs": 0, "metrics": 1, "datasets": 1, "layers": 1, "models": 2, "training": 3, "jax_training": 3, "sanity": 4, "release": 4,
        "report": 4, "sweep": 4}


def absolute_module(node: ast.ImportFrom, path: pathlib.Path) -> str:
    """The absolute module of a `from ... import`, relative ones (`from ..models import x`) resolved."""
    if node.level == 0:
        return node.module or ""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    base = package[:len(package) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


def imported_subpackages(path: pathlib.Path) -> set[str]:
    """The uncertainty_baselines subpackages a source file imports (absolutely or relatively)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = absolute_module(node, path)
            names = [module] if "." in module else [f"{module}.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "uncertainty_baselines" and len(parts) > 1 and parts[1] in RANK:
                found.add(parts[1])
    return found


def owner(path: pathlib.Path) -> str | None:
    rel = path.relative_to(PACKAGE).parts
    name = rel[0].removesuffix(".py")
    return name if name in RANK else None


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if owner(p))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_only_go_down(path):
    layer = owner(path)
    upward = sorted(s for s in imported_subpackages(path) if s != layer and RANK[s] >= RANK[layer])
    assert not upward, f"{path.relative_to(PACKAGE)} ({layer}) imports {upward}: same or higher layer"


def test_the_check_sees_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from uncertainty_baselines.training import loop\n"
                   "import uncertainty_baselines.models.loading\n")
    assert imported_subpackages(bad) == {"training", "models"}


def test_the_check_resolves_relative_imports():
    inside = PACKAGE / "datasets" / "fake.py"  # Never written: only its place in the package matters.
    source = "from ..training import loop\nfrom .. import models\nfrom . import base\n"
    tree = ast.parse(source)
    modules = [absolute_module(node, inside) for node in tree.body]
    assert modules == ["uncertainty_baselines.training", "uncertainty_baselines", "uncertainty_baselines.datasets"]


def test_every_subpackage_has_a_rank():
    subpackages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert subpackages <= set(RANK), subpackages - set(RANK)
