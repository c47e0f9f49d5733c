"""The operator's commands (``halt``, ``flatten``, ``resume``...) as a subprocess, run as
the sudo caller "alice" so the journal records who."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import REAL_CMD, clean_env


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*REAL_CMD, *args],
        cwd=tmp_path,
        env=clean_env(SUDO_USER="alice"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
