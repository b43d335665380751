"""Import arrows: `cli` -> `service` -> `adapters`; `tests` and `bench` -> `harness`; never the
other way, and tests and bench never import each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# package -> top-level packages its modules must not import
# (the drivers tests and benchmarks share live in harness/, which imports neither)
FORBIDDEN = {
    "adapters": {"service", "cli", "bench", "tests", "harness"},
    "service": {"cli", "bench", "tests", "harness"},
    "cli": {"bench", "tests", "harness"},
    "harness": {"bench", "tests"},
    "tests": {"bench"},
    "bench": {"tests"},
}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_imported_roots_sees_nested_and_from_imports(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "import os.path\ndef f():\n    from service.main import run\nfrom . import x\n"
    )
    assert imported_roots(source) == {"os", "service"}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_point_down(package: str) -> None:
    wrong = {
        str(path.relative_to(ROOT)): sorted(imported_roots(path) & FORBIDDEN[package])
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    assert not {name: roots for name, roots in wrong.items() if roots}
