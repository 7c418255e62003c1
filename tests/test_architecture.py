"""The layout rules the code keeps.

A light library that knows nothing of the app, an app package (``ui/``) of Streamlit code only and without
import cycles, and files small enough to read.
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import loaded_after

REPO = Path(__file__).resolve().parent.parent
LIBRARY = REPO / "vlexplore"
APP = REPO / "ui"
MAX_LINES = 450
#: Files over MAX_LINES when this test was written; they are being split.


def _modules(package: Path) -> list[Path]:
    return sorted(p for p in package.rglob("*.py") if "node_modules" not in p.parts)


def _imports(path: Path, package: str | None = None) -> set[str]:
    """Absolute names of every module ``path`` imports, at any depth (imports inside functions too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                rel = path.relative_to(REPO).with_suffix("").parts
                base = list(rel[: len(rel) - node.level])
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.add(name)
            out.update(f"{name}.{alias.name}" for alias in node.names)
    return out


def _top(name: str) -> str:
    return name.split(".")[0]


def test_importing_the_library_loads_no_heavy_or_app_package():
    heavy = ("streamlit", "torch", "sklearn", "pandas", "plotly", "ui")
    assert loaded_after("import vlexplore", heavy, timeout=120) == []


def test_the_library_never_imports_the_app_or_streamlit():
    bad = {
        str(path.relative_to(REPO)): sorted(
            n for n in _imports(path) if _top(n) in ("ui", "views", "streamlit", "app")
        )
        for path in _modules(LIBRARY)
    }
    assert {k: v for k, v in bad.items() if v} == {}


def test_every_app_module_is_streamlit_code():
    """What needs no Streamlit belongs in the library (``vlexplore/``) or, for test tooling, ``tools/``."""
    modules = [p for p in sorted(APP.glob("*.py")) if p.name != "__init__.py"]
    assert modules
    without = [p.name for p in modules if not any(_top(n) == "streamlit" for n in _imports(p))]
    assert without == []


def test_no_import_cycle_among_app_modules():
    names = {p.stem: p for p in APP.glob("*.py") if p.name != "__init__.py"}
    graph: dict[str, set[str]] = {}
    for stem, path in names.items():
        deps = set()
        for n in _imports(path):
            parts = n.split(".")
            if parts[0] == "ui" and len(parts) > 1 and parts[1] in names:
                deps.add(parts[1])
        graph[stem] = deps - {stem}

    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_no_source_file_is_over_the_line_limit():
    long = {
        str(p.relative_to(REPO)): n
        for folder in (LIBRARY, APP, REPO / "views")
        for p in _modules(folder)
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_every_library_package_is_listed_for_installation():
    import tomllib

    listed = set(
        tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["tool"]["setuptools"]["packages"]
    )
    found = {".".join(p.parent.relative_to(REPO).parts) for p in LIBRARY.rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)
