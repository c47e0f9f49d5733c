"""Request weight per rolling minute, as Binance counts it (real time, not the sim clock)."""

from __future__ import annotations

import threading
import time


class WeightLimiter:
    def __init__(self, *, limit_per_minute: int) -> None:
        self.limit = limit_per_minute
        self._lock = threading.Lock()
        self._minute = -1
        self._used = 0

    def charge(self, weight: int) -> tuple[int, bool]:
        """Count ``weight``; return (weight used this minute, whether within the limit)."""
        minute = int(time.monotonic() // 60)
        with self._lock:
            if minute != self._minute:
                self._minute, self._used = minute, 0
            self._used += weight
            return self._used, self.limit <= 0 or self._used <= self.limit

    def reset(self) -> None:
        with self._lock:
            self._used = 0
