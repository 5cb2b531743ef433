"""The product's shape: no import cycle between its modules (lazy imports inside functions count too;
only `if TYPE_CHECKING:` blocks do not, as they never run), and services never import each other."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def product_modules() -> dict[str, Path]:
    modules = {}
    for path in [*ROOT.glob("shared/**/*.py"), *ROOT.glob("services/**/*.py")]:
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    return modules


def imports(path: Path, modules: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text())
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
               and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING" for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            submodules = {f"{node.module}.{a.name}" for a in node.names} & modules.keys()
            # `from package import submodule` imports the submodule (and runs the package's __init__).
            found |= submodules or ({node.module} & modules.keys())
            if submodules and node.module in modules and modules[node.module].name == "__init__.py":
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names} & modules.keys()
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the stack, 2: done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                found.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_the_checker_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c", "a"]]


def test_no_import_cycle_in_the_product_code() -> None:
    modules = product_modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        graph[name] = imports(path, modules) - {name}
    assert len(graph) > 100
    assert cycles(graph) == []


def test_services_do_not_import_each_other() -> None:
    modules = product_modules()
    crossing = []
    for name, path in modules.items():
        if not name.startswith("services."):
            continue
        own = name.split(".")[1]
        for imported in imports(path, modules):
            if imported.startswith("services.") and imported.split(".")[1] != own:
                crossing.append(f"{name} -> {imported}")
    assert crossing == []
