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


class RecordedProgress:
    """A startup progress sink that keeps what it was told, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str | float]] = []

    def step(self, text: str) -> None:
        self.events.append(("step", text))

    def waiting(self, seconds: float) -> None:
        self.events.append(("waiting", seconds))

    @property
    def steps(self) -> list[str]:
        return [str(v) for k, v in self.events if k == "step"]

    @property
    def waits(self) -> list[float]:
        return [float(v) for k, v in self.events if k == "waiting"]
