"""Import arrows, checked on the source (every `import`, nested ones included) and, for the
engine and the store, on what importing a module really loads.

Packages: `cli` -> `service` -> `adapters`; `tests` and `bench` -> `harness`; never the other
way, and tests and bench never import each other. Inside the service: the API never imports
the store (it goes through the engine's facades); the store imports neither torch nor a web
framework; the engine imports no web framework, not even through another module.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WEB = ("fastapi", "starlette")

# folder -> modules (and everything below them) that no module in the folder may import
FORBIDDEN = {
    "adapters": ("service", "cli", "bench", "tests", "harness"),
    "service": ("cli", "bench", "tests", "harness"),
    "service/api": ("service.store",),
    "service/store": ("torch", *WEB, "service.api", "service.engine"),
    "service/engine": (*WEB, "service.api"),
    "cli": ("bench", "tests", "harness"),
    "harness": ("bench", "tests"),
    "tests": ("bench",),
    "bench": ("tests",),
}

# folder -> (modules that importing any of its modules must not load, modules loaded first).
# Each module is imported in a forked child of one process that loaded the second list, so
# the check costs seconds, not one torch import per module; the preload is checked clean.
NEVER_LOADED = {
    "service/engine": (
        WEB,
        ("torch", "transformers", "adapters.model", "adapters.artifact", "adapters.backbone"),
    ),
    "service/store": (("torch", *WEB), ()),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    return modules_in(path.read_text(), module_name(path), path.name == "__init__.py")


def modules_in(source: str, module: str, is_package: bool) -> set[str]:
    """Every module `source` (the text of `module`) imports, relative imports resolved."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    names = set()
    for node in ast.walk(ast.parse(source, module)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            name = ".".join([*base, *([node.module] if node.module else [])])
            names.add(name)
            names.update(f"{name}.{alias.name}" for alias in node.names)
    return names


def matches(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_modules_in_sees_nested_relative_and_from_imports() -> None:
    source = "import os.path\ndef f():\n    from service.main import run\nfrom . import x\n"
    names = modules_in(source, "service.api.routes", is_package=False)
    assert names == {"os.path", "service.main", "service.main.run", "service.api", "service.api.x"}
    assert modules_in("from .. import y", "service.api", is_package=True) == {
        "service",
        "service.y",
    }
    assert matches("service.store.keys", ("service.store",))
    assert not matches("service.storefront", ("service.store",))


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_imports_point_down(folder: str) -> None:
    wrong = {
        str(path.relative_to(ROOT)): sorted(
            name for name in imported_modules(path) if matches(name, FORBIDDEN[folder])
        )
        for path in sorted((ROOT / folder).rglob("*.py"))
    }
    assert not {name: found for name, found in wrong.items() if found}


CHILD = """
import importlib, json, os, sys
preload, modules, never = json.loads(sys.argv[1])
for name in preload:
    importlib.import_module(name)
bad = lambda: sorted(n for n in sys.modules if any(n == p or n.startswith(p + ".") for p in never))
assert not bad(), f"the preload itself loads {bad()}"
found = {}
for module in modules:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        importlib.import_module(module)
        os.write(write, json.dumps(bad()).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        text = pipe.read()
    _, status = os.waitpid(pid, 0)
    found[module] = json.loads(text) if status == 0 and text else ["<import failed>"]
print(json.dumps(found))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="forks one child per module")
@pytest.mark.parametrize("folder", sorted(NEVER_LOADED))
def test_importing_a_module_loads_nothing_forbidden(folder: str) -> None:
    modules = [module_name(p) for p in sorted((ROOT / folder).rglob("*.py"))]
    never, preload = NEVER_LOADED[folder]
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps([preload, modules, never])],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=True,
    )
    found = json.loads(out.stdout)
    assert sorted(found) == sorted(modules)
    assert not {module: loaded for module, loaded in found.items() if loaded}
