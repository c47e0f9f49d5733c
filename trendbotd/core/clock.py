"""The daemon's notion of time as an interface, and a clock tests drive by hand.

The clocks that read the host's time (``SystemClock``, ``ScaledClock``) live in
``trendbotd.adapters.clock``; everything else takes a ``Clock``. All return integer UTC
milliseconds.
"""

from __future__ import annotations

import threading
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Current time in UTC milliseconds (the daemon's view, before exchange offset)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Sleep for ``seconds`` of this clock's time (may be shorter in real time)."""
        ...


class ManualClock:
    """A clock that tests move by hand; ``sleep`` advances it instantly."""

    def __init__(self, start_ms: int = 0) -> None:
        self._now = start_ms
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        with self._lock:
            return self._now

    def advance(self, ms: int) -> None:
        with self._lock:
            self._now += ms

    def sleep(self, seconds: float) -> None:
        self.advance(int(seconds * 1000))
