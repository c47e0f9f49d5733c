"""Where the daemon's notion of time comes from. Nothing else reads the wall clock.

``SystemClock`` for live runs; ``ScaledClock`` replays faster for paper mode (--speed).
The ``Clock`` interface and the tests' ``ManualClock`` live in ``trendbotd.core.clock``.
"""

from __future__ import annotations

import time


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class ScaledClock:
    """Runs ``speed`` times faster than real time from a chosen start instant."""

    def __init__(self, *, start_ms: int, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._start_ms = start_ms
        self._speed = speed
        self._real_start = time.monotonic()

    @property
    def speed(self) -> float:
        return self._speed

    def now_ms(self) -> int:
        elapsed = time.monotonic() - self._real_start
        return self._start_ms + int(elapsed * self._speed * 1000)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self._speed)
