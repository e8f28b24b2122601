"""The layout of the three packages (issue 10): imports run one way, `workers` → `publisher` →
`channels`, with no circle between files, and no file of `publisher/` or `channels/` is over
600 lines.

The files are read with `ast`, never imported, so a module that fails to import cannot hide a
circle. Every import statement counts, at module level and inside functions. `from a import b`
reaches the submodule `a/b.py` when there is one, else the package's `a/__init__.py`; `import
a.b` reaches `a/b.py` (the packages Python initialises on the way are not counted as imports).
"""

from __future__ import annotations

import ast
from collections import deque
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("publisher", "channels", "workers")
MAX_LINES = 600
LENGTH_CHECKED = ("publisher/", "channels/")
LENGTH_EXEMPT = ("publisher/migrations/versions/",)
# What each package may not import, and the files allowed to all the same: the CLI command
# that starts the worker and beat is the composition root.
FORBIDDEN = {"channels": ("publisher", "workers"), "publisher": ("workers",)}
COMPOSITION_ROOTS = {"publisher/cli/run.py"}


@dataclass(frozen=True)
class Import:
    source: str  # the importing file, relative to the root
    line: int
    module: str  # the dotted name it reaches (one of ours, or another distribution's)
    target: str | None  # our file it reaches; None: not ours


def module_files(root: Path) -> dict[str, str]:
    """Dotted module name → file (relative to `root`, with `/`) of every .py file of the
    packages; a package's name maps to its `__init__.py`."""
    found: dict[str, str] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root)
            parts = list(relative.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = relative.as_posix()
    return found


def imports(root: Path) -> list[Import]:
    """Every import statement of the packages' files, resolved to the file it reaches."""
    files = module_files(root)
    found: list[Import] = []
    for module, source in files.items():
        tree = ast.parse((root / source).read_text(encoding="utf-8"), filename=source)
        package = module if source.endswith("__init__.py") else module.rpartition(".")[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for name in _reached(node, package, files):
                    found.append(Import(source, node.lineno, name, _file_of(name, files)))
    return found


def _reached(node: ast.Import | ast.ImportFrom, package: str, files: dict[str, str]) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        parents = package.split(".")[: len(package.split(".")) - (node.level - 1)]
        base = ".".join([*parents, *([base] if base else [])])
    submodules = [f"{base}.{alias.name}" for alias in node.names]
    return [name if name in files else base for name in submodules]


def _file_of(name: str, files: dict[str, str]) -> str | None:
    """Our file that `import name` reaches: the module, else the package it names a part of."""
    parts = name.split(".")
    while parts:
        if ".".join(parts) in files:
            return files[".".join(parts)]
        parts.pop()
    return None


def import_circles(found: list[Import]) -> list[list[str]]:
    """The strongly connected components of more than one file (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for imp in found:
        graph.setdefault(imp.source, set())
        if imp.target is not None and imp.target != imp.source:
            graph[imp.source].add(imp.target)
            graph.setdefault(imp.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph[succ]))))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))
    return sorted(components)


def one_circle(component: list[str], found: list[Import]) -> str:
    """A shortest circle through the component's first file: `a.py:12 → b.py:3 → a.py` reads
    "line 12 of a.py imports b.py, whose line 3 imports a.py"."""
    members = set(component)
    line: dict[tuple[str, str], int] = {}
    for imp in found:
        if imp.source in members and imp.target in members and imp.source != imp.target:
            line.setdefault((imp.source, imp.target), imp.line)
    start = component[0]
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:  # breadth first, so the first way back to `start` is a shortest one
        node = queue.popleft()
        for target in sorted(t for s, t in line if s == node):
            if target == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                steps = [*reversed(path), start]
                return " → ".join(f"{a}:{line[a, b]}" for a, b in pairwise(steps)) + f" → {start}"
            if target not in came_from:
                came_from[target] = node
                queue.append(target)
    raise AssertionError(f"{start} is not on a circle")


def layer_violations(found: list[Import]) -> list[str]:
    problems: list[str] = []
    for imp in found:
        package = imp.source.split("/")[0]
        reached = imp.module.split(".")[0]
        if reached in FORBIDDEN.get(package, ()) and imp.source not in COMPOSITION_ROOTS:
            problems.append(
                f"{imp.source}:{imp.line} imports {imp.module} ({package} may not import {reached})"
            )
    return sorted(set(problems))  # `from a import b, c` is one line


def long_files(root: Path) -> list[str]:
    problems = []
    for source in sorted(module_files(root).values()):
        if not source.startswith(LENGTH_CHECKED) or source.startswith(LENGTH_EXEMPT):
            continue
        lines = len((root / source).read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES:
            problems.append(f"{source} has {lines} lines (at most {MAX_LINES})")
    return problems


def layout_problems(root: Path) -> list[str]:
    """Everything wrong with the layout under `root`, one line each; [] when it is kept."""
    found = imports(root)
    circles = [
        f"import circle of {len(c)} files: {', '.join(c)}\n    e.g. {one_circle(c, found)}"
        for c in import_circles(found)
    ]
    return [*circles, *layer_violations(found), *long_files(root)]


def test_publisher_channels_and_workers_keep_the_layout() -> None:
    problems = layout_problems(ROOT)

    assert not problems, "the layout of issue 10 is not kept:\n" + "\n".join(problems)


# --- the check itself, on small trees -----------------------------------------------------------


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


CLEAN = {
    "channels/__init__.py": "",
    "channels/base.py": "import json\n",
    "channels/website.py": "from channels.base import json\nfrom . import base\n",
    "publisher/__init__.py": "VERSION = 1\n",
    "publisher/config.py": "from publisher import VERSION\n",
    "publisher/delivery/__init__.py": "",
    "publisher/delivery/engine.py": (
        "from channels import website\nfrom ..config import VERSION\n"
        "def sync():\n    from publisher.delivery import claims\n"
    ),
    "publisher/delivery/claims.py": "import publisher.config\n",
    "publisher/cli/__init__.py": "",
    "publisher/cli/run.py": "def worker():\n    import workers.app\n",
    "publisher/migrations/versions/0001_big.py": "x = 1\n" * (MAX_LINES + 1),
    "workers/__init__.py": "",
    "workers/app.py": "from publisher.delivery.engine import sync\n",
}


def test_a_tree_that_keeps_the_layout_passes(tmp_path: Path) -> None:
    assert layout_problems(write_tree(tmp_path, CLEAN)) == []


@pytest.mark.parametrize(
    ("changes", "circle"),
    [
        # through an import inside a function, and `from package import submodule`
        (
            {"publisher/delivery/claims.py": "from publisher.delivery import engine\n"},
            "publisher/delivery/claims.py, publisher/delivery/engine.py",
        ),
        # a module importing a name from its package's __init__, which imports the module
        (
            {"publisher/__init__.py": "from publisher.config import X\nVERSION = 1\n"},
            "publisher/__init__.py, publisher/config.py",
        ),
        # a relative import inside a function
        (
            {"channels/base.py": "def f():\n    from .website import g\n"},
            "channels/base.py, channels/website.py",
        ),
    ],
)
def test_a_circle_is_found(tmp_path: Path, changes: dict[str, str], circle: str) -> None:
    problems = layout_problems(write_tree(tmp_path, {**CLEAN, **changes}))

    assert len(problems) == 1 and problems[0].startswith("import circle of 2 files: " + circle)
    assert " → " in problems[0]


def test_layers_and_long_files_are_found(tmp_path: Path) -> None:
    changes = {
        "channels/base.py": "def f():\n    from publisher.config import VERSION\n",
        "publisher/api.py": "import workers.app\n",
        "publisher/delivery/engine.py": "x = 1\n" * (MAX_LINES + 1),
    }

    problems = layout_problems(write_tree(tmp_path, {**CLEAN, **changes}))

    assert problems == [
        "channels/base.py:2 imports publisher.config (channels may not import publisher)",
        "publisher/api.py:1 imports workers.app (publisher may not import workers)",
        f"publisher/delivery/engine.py has {MAX_LINES + 1} lines (at most {MAX_LINES})",
    ]
