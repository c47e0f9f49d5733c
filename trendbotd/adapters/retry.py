"""Rate-limit bookkeeping of the ccxt adapter: Retry-After parsing and request pacing (pure,
no ccxt import). The retry policy itself is ``trendbotd.core.retry``."""

from __future__ import annotations

import email.utils
from typing import Any


def retry_after_seconds(headers: Any, *, now_ms: int) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date), or None when absent/garbled."""
    if headers is None:
        return None
    try:
        raw = headers.get("Retry-After") or headers.get("retry-after")
    except AttributeError:
        return None
    if raw is None:
        return None
    text = str(raw).strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now_ms / 1000)


class TokenBucket:
    """Request pacing in ccxt's cost units (Binance request weight).

    Refills at ``per_s`` units per second (ccxt's own pace: 1 unit per ``rateLimit`` ms)
    up to ``capacity``, so a burst like startup sync goes out at once while the long-run
    rate stays ccxt's. A request that finds too few units reserves them anyway (the level
    goes negative) and is told how long to wait.
    """

    def __init__(self, *, capacity: float, per_s: float, now_ms: int) -> None:
        if capacity < 1 or per_s <= 0:
            raise ValueError("TokenBucket: capacity >= 1 and per_s > 0")
        self.capacity = capacity
        self.per_s = per_s
        self._level = capacity
        self._at_ms = now_ms

    def reserve(self, cost: float, *, now_ms: int) -> float:
        """Take ``cost`` units; returns the seconds to wait before sending (0: go now)."""
        elapsed_s = max(0, now_ms - self._at_ms) / 1000
        self._level = min(self.capacity, self._level + elapsed_s * self.per_s)
        self._at_ms = max(self._at_ms, now_ms)
        self._level -= cost
        return 0.0 if self._level >= 0 else -self._level / self.per_s
