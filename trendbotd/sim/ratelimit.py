"""Rate limits of the simulated exchange, as Binance USD-M applies them.

- Request weight per IP (one IP here: everything comes from 127.0.0.1) in fixed windows
  of wall time (Binance: 2400 per minute, reset when the minute starts), charged per
  endpoint and parameters (``request_weight``); every answer carries X-MBX-USED-WEIGHT-1M.
- New orders per account: 300 per 10 s and 1200 per minute; order answers carry
  X-MBX-ORDER-COUNT-10S and X-MBX-ORDER-COUNT-1M.
- Past a limit: 429 with Retry-After (seconds until the window rolls over). A client that
  keeps sending during that backoff is banned: 418 with Retry-After, 2 minutes at first and
  doubling with each ban up to 3 days. Requests already in flight when the 429 went out
  (the first ``grace_ms``) are forgiven.
Windows run on real time, not the sim clock: a fast paper replay is not a faster minute.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

ORDER_PATHS = frozenset({("POST", "/fapi/v1/order"), ("POST", "/fapi/v1/algoOrder")})
MAX_BAN_MS = 3 * 24 * 3600 * 1000

# Binance's documented weights that depend on the parameters: (path, param) -> bands of
# (largest value, weight); a value above every band takes the last weight.
_BY_LIMIT: dict[str, tuple[tuple[int, int], ...]] = {
    "/fapi/v1/klines": ((99, 1), (499, 2), (1000, 5), (10**9, 10)),
    "/fapi/v1/depth": ((50, 2), (100, 5), (500, 10), (10**9, 20)),
}
_DEFAULT_LIMIT = {"/fapi/v1/klines": 500, "/fapi/v1/depth": 500}
_NO_SYMBOL_WEIGHT = {"/fapi/v1/openOrders": 40, "/fapi/v1/openAlgoOrders": 40}


def request_weight(path: str, params: Mapping[str, str], *, base: int) -> int:
    """Binance's weight of one request: the route's ``base`` weight unless the endpoint
    is charged by its ``limit`` (klines, depth) or costs more without a symbol."""
    if path in _NO_SYMBOL_WEIGHT and not params.get("symbol"):
        return _NO_SYMBOL_WEIGHT[path]
    bands = _BY_LIMIT.get(path)
    if bands is None:
        return base
    try:
        limit = int(params.get("limit") or _DEFAULT_LIMIT[path])
    except ValueError:
        return base
    return next(weight for top, weight in bands if limit <= top)


@dataclass(frozen=True, slots=True)
class Admission:
    status: int  # 200: run the request; 429 or 418: refused with Retry-After
    retry_after_s: int
    headers: dict[str, str]
    banned_until_ms: int = 0
    order_limit: str = ""  # "10s" / "1m": refused by that order-count limit, not by weight


@dataclass(slots=True)
class _Window:
    length_ms: int
    index: int = -1
    count: int = 0

    def add(self, amount: int, now_ms: int) -> int:
        index = now_ms // self.length_ms
        if index != self.index:
            self.index, self.count = index, 0
        self.count += amount
        return self.count

    def ends_in_s(self, now_ms: int) -> int:
        """Whole seconds until the window rolls over (at least 1)."""
        left_ms = (now_ms // self.length_ms + 1) * self.length_ms - now_ms
        return max(1, -(-left_ms // 1000))


@dataclass(slots=True)
class WeightLimiter:
    """The exchange's counters. ``limit`` (weight per window) 0 switches all limits off."""

    limit_per_minute: int = 2400
    orders_per_10s: int = 300
    orders_per_minute: int = 1200
    window_ms: int = 60_000  # Binance: one minute; tests may shorten it
    ban_ms: int = 120_000
    grace_ms: int = 1000
    now_ms: Callable[[], int] = field(default=lambda: time.time_ns() // 1_000_000)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _weight: _Window = field(init=False)
    _orders_10s: _Window = field(init=False)
    _orders_1m: _Window = field(init=False)
    _backoff_until_ms: int = 0
    _backoff_since_ms: int = 0
    _banned_until_ms: int = 0
    _bans: int = 0

    def __post_init__(self) -> None:
        self._weight = _Window(self.window_ms)
        self._orders_10s = _Window(max(1, self.window_ms // 6))
        self._orders_1m = _Window(self.window_ms)

    @property
    def limit(self) -> int:
        return self.limit_per_minute

    @limit.setter
    def limit(self, value: int) -> None:
        self.limit_per_minute = value

    @property
    def bans(self) -> int:
        return self._bans

    def admit(self, weight: int, *, order: bool) -> Admission:
        """Charge one request and say whether it may run. Refused requests count too."""
        now = self.now_ms()
        with self._lock:
            used = self._weight.add(weight, now)
            headers = {"X-MBX-USED-WEIGHT-1M": str(used)}
            if order:
                headers["X-MBX-ORDER-COUNT-10S"] = str(self._orders_10s.add(1, now))
                headers["X-MBX-ORDER-COUNT-1M"] = str(self._orders_1m.add(1, now))
            if self.limit_per_minute <= 0:
                return Admission(200, 0, headers)
            if now < self._banned_until_ms:
                return self._refuse(418, self._banned_until_ms, now, headers)
            if now < self._backoff_until_ms and now - self._backoff_since_ms > self.grace_ms:
                self._bans += 1
                ban = min(MAX_BAN_MS, self.ban_ms * 2 ** (self._bans - 1))
                self._banned_until_ms = now + ban
                return self._refuse(418, self._banned_until_ms, now, headers)
            over = self._over(used, order=order)
            if over is not None:
                if now >= self._backoff_until_ms:
                    self._backoff_since_ms = now
                self._backoff_until_ms = max(
                    self._backoff_until_ms, now + over.ends_in_s(now) * 1000
                )
                refused = self._refuse(429, self._backoff_until_ms, now, headers)
                if over is self._weight:
                    return refused
                interval = "10s" if over is self._orders_10s else "1m"
                return replace(refused, order_limit=interval)
            return Admission(200, 0, headers)

    def order_limit(self, interval: str) -> int:
        return self.orders_per_10s if interval == "10s" else self.orders_per_minute

    def _over(self, used: int, *, order: bool) -> _Window | None:
        if used > self.limit_per_minute:
            return self._weight
        if order and self._orders_10s.count > self.orders_per_10s:
            return self._orders_10s
        if order and self._orders_1m.count > self.orders_per_minute:
            return self._orders_1m
        return None

    def _refuse(self, status: int, until_ms: int, now: int, headers: dict[str, str]) -> Admission:
        retry_after = max(1, -(-(until_ms - now) // 1000))
        return Admission(status, retry_after, {**headers, "Retry-After": str(retry_after)},
                         banned_until_ms=until_ms if status == 418 else 0)  # fmt: skip

    def reset(self) -> None:
        with self._lock:
            self._weight.count = self._orders_10s.count = self._orders_1m.count = 0
            self._backoff_until_ms = self._banned_until_ms = 0
