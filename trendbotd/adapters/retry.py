"""Retry policy and rate-limit bookkeeping of the ccxt adapter (pure, no ccxt import)."""

from __future__ import annotations

import email.utils
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded exponential backoff for reads: at most ``attempts`` tries and ``max_total_s``
    seconds of waiting in all. Order creation is never retried."""

    attempts: int = 4
    base_delay_s: float = 0.25
    max_delay_s: float = 4.0
    max_total_s: float = 10.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.base_delay_s < 0 or self.max_delay_s < self.base_delay_s:
            raise ValueError("RetryPolicy: attempts >= 1 and 0 <= base_delay_s <= max_delay_s")
        if self.max_total_s < 0:
            raise ValueError("RetryPolicy: max_total_s must not be negative")

    def delay_s(self, attempt: int, *, retry_after_s: float | None = None) -> float:
        """Wait before try number ``attempt + 1``; never shorter than the server asked."""
        delay = min(self.max_delay_s, self.base_delay_s * 2.0 ** (attempt - 1))
        return max(delay, retry_after_s or 0.0)


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
