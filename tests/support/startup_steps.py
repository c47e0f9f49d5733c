"""The progress steps the startup sync announces, pinned once for the unit and the
integration test: a renamed or reordered step is a change operators see."""

from __future__ import annotations

STARTUP_STEPS = [
    "syncing time",
    "checking account mode",
    "loading markets",
    "syncing balance",
    "syncing positions",
    "syncing open orders",
]
