"""The order path keeps one direction: positions -> order_flow / closes -> executor ->
intent_book / order_queries. A leaf that imported back up would let an order weave in and
out of modules again."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import trendbotd

TRADING = Path(trendbotd.__file__).parent / "trading"
# module -> the trading modules it may import (anything outside trading/ is not checked here)
ALLOWED = {
    "intent_book": set(),
    "order_queries": set(),
    "executor": {"crashpoints", "intent_book", "order_queries"},
    "closes": {"executor"},
    "order_flow": {"closes", "executor"},
}


def trading_imports(module: str) -> set[str]:
    tree = ast.parse((TRADING / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "trendbotd.trading."
        ):
            found.add((node.module or "").removeprefix("trendbotd.trading."))
    return found


@pytest.mark.parametrize("module", sorted(ALLOWED))
def test_order_path_modules_only_call_down(module: str) -> None:
    assert trading_imports(module) <= ALLOWED[module]


def test_the_check_sees_an_import() -> None:
    assert trading_imports("order_flow") == {"closes", "executor"}
