"""The operator's side of a daemon under test: a ``trendbotd`` command run to completion,
and the trading mode its journal holds."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from trendbotd.core.records import ModeState
from trendbotd.journal.store import open_journal


def run_cli(
    cwd: Path, *args: str, env: Mapping[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """``trendbotd <args>`` in ``cwd``, its output captured; never raises on the exit code."""
    return subprocess.run(
        [sys.executable, "-m", "trendbotd", *args],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def journal_mode(journal: Path) -> ModeState:
    """The trading mode as the journal holds it (read-only: the daemon may be running)."""
    with open_journal(journal, read_only=True) as j:
        return j.controls.mode()
