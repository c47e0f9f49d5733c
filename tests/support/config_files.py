"""A configuration file for a test, written where the test's tmp_path is."""

from __future__ import annotations

from pathlib import Path

CONFIG_NAME = "c.toml"


def config_file(tmp_path: Path, text: str) -> Path:
    """Writes ``text`` as ``tmp_path/c.toml`` and returns its path."""
    path = tmp_path / CONFIG_NAME
    path.write_text(text)
    return path
