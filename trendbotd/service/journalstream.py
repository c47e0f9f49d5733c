"""Is this stream the journal? Apart from logsetup so that a refused start's one error
line (cli) can ask without importing the logging set-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TextIO


def under_journald(stream: TextIO, env: Mapping[str, str]) -> bool:
    """True when ``stream`` is the journal stream systemd connected us to (JOURNAL_STREAM)."""
    value = env.get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    if not (dev.isdigit() and ino.isdigit()):
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))
