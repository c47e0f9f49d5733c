"""The layer contracts (import-linter, [tool.importlinter] in pyproject.toml) hold on the
package, and each one breaks when a copy of the package is given the import it forbids."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports with the project's contracts over the package found under ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree), "COLUMNS": "200"}  # no wrapped names
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", "--config", str(ROOT / "pyproject.toml")],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_package_keeps_every_contract() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("core/domain.py", "import sqlite3", "core is pure"),
        (
            "core/domain.py",
            "from trendbotd.adapters import ccxt_exchange",
            "core is pure",
        ),
        (
            "trading/engine.py",
            "from trendbotd.adapters import ccxt_exchange",
            "only the composition root and the entry points import adapters",
        ),
        (
            "journal/store.py",
            "from trendbotd.sim import SimExchange",
            "the simulated exchange is reachable only from the composition root",
        ),
        (
            "journal/store.py",
            "from trendbotd.trading import engine",
            "layers: each imports only the ones below it",
        ),
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    shutil.copytree(
        ROOT / "trendbotd",
        tmp_path / "trendbotd",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    target = tmp_path / "trendbotd" / module
    target.write_text(f"{line}  # noqa\n" + target.read_text())

    result = lint_imports(tmp_path)

    assert result.returncode != 0, result.stdout
    _, _, broken = result.stdout.partition("Broken contracts")
    assert contract in broken, result.stdout
    assert f"trendbotd.{module[:-3].replace('/', '.')}" in result.stdout
