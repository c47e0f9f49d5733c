"""What the daemon imports before its startup sync: as little as it can, since a position
found without a stop waits for it. The engine (numpy, the strategy) comes after the sync."""

from __future__ import annotations

import subprocess
import sys

BEFORE_SYNC = (
    "trendbotd.cli",
    "trendbotd.service.lifecycle",
    "trendbotd.trading.compose.root",
    "trendbotd.trading.compose.cluster",
)


def test_the_startup_sync_path_does_not_import_numpy_or_the_strategy() -> None:
    probe = (
        "import importlib, sys\n"
        f"for name in {BEFORE_SYNC!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in ('numpy', 'trendbotd.core.strategy', 'trendbotd.trading.engine')"
        " if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stdout
