"""The simulator's modules import one another without a cycle (TYPE_CHECKING imports
count too), and its HTTP front and control API know only the narrow ports."""

from __future__ import annotations

import ast
from pathlib import Path

import trendbotd.sim

SIM = Path(trendbotd.sim.__file__).parent
PACKAGE = "trendbotd.sim"


def sim_imports(source: str) -> set[str]:
    """The trendbotd.sim modules a module's source imports, anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith(PACKAGE + "."))
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            if node.module == PACKAGE:  # from trendbotd.sim import errors
                found.update(f"{PACKAGE}.{a.name}" for a in node.names)
            elif node.module.startswith(PACKAGE + "."):
                found.add(node.module)
    return found


def graph() -> dict[str, set[str]]:
    modules = {f"{PACKAGE}.{p.stem}": p for p in SIM.glob("*.py") if p.stem != "__init__"}
    return {
        name: {m for m in sim_imports(path.read_text()) if m in modules}
        for name, path in modules.items()
    }


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One path per back edge found by a depth-first walk (empty: the graph is acyclic)."""
    found: list[list[str]] = []
    done: set[str] = set()

    def walk(node: str, path: list[str]) -> None:
        for nxt in sorted(edges.get(node, ())):
            if nxt in path:
                found.append([*path[path.index(nxt) :], nxt])
            elif nxt not in done:
                walk(nxt, [*path, nxt])
        done.add(node)

    for start in sorted(edges):
        if start not in done:
            walk(start, [start])
    return found


def test_cycles_finds_a_cycle_and_passes_a_chain() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_type_checking_imports_are_seen() -> None:
    source = (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from trendbotd.sim.x import Y\n"
    )
    assert sim_imports(source) == {"trendbotd.sim.x"}


def test_the_simulator_has_no_import_cycle() -> None:
    edges = graph()
    assert "trendbotd.sim.exchange" in edges  # the walk saw the package
    assert cycles(edges) == []


def test_server_and_control_depend_on_ports_not_on_the_exchange() -> None:
    edges = graph()

    def reach(start: str) -> set[str]:
        seen: set[str] = set()
        todo = [start]
        while todo:
            for nxt in edges[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen

    for front in ("trendbotd.sim.server", "trendbotd.sim.control"):
        assert "trendbotd.sim.ports" in edges[front]
        assert "trendbotd.sim.exchange" not in reach(front)
