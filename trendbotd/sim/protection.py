"""Unprotected time, measured from the exchange's side.

Per symbol: how long the account held a nonzero position that open reduce-only stops on
the closing side (STOP / STOP_MARKET algo orders, or a closePosition stop) did not fully
cover. The state observes itself after every change, so a gap starts at the change that
opened it and ends at the change that closed it, on the server's clock. Persisted with
the state file, shown in ``GET /sim/state`` as ``protection``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from trendbotd.sim.orders import SimAlgoOrder

ZERO = Decimal(0)
RECENT_GAPS = 20  # the last gaps of each symbol, (start_ms, end_ms), for tests to inspect
_STOP_TYPES = frozenset({"STOP", "STOP_MARKET"})


def covered(amount: Decimal, algos: Iterable[SimAlgoOrder]) -> Decimal:
    """How much of the signed position ``amount`` the open stops among ``algos`` close."""
    closing = "SELL" if amount > 0 else "BUY"
    total = ZERO
    for a in algos:
        if not (a.is_open and a.side == closing and a.order_type in _STOP_TYPES):
            continue
        if a.close_position:
            return abs(amount)
        if a.reduce_only:
            total += a.qty
    return min(total, abs(amount))


@dataclass(slots=True)
class SymbolGaps:
    total_ms: int = 0  # closed gaps, summed
    max_ms: int = 0
    count: int = 0
    open_since_ms: int | None = None
    recent: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=RECENT_GAPS))

    def observe(self, unprotected: bool, now: int) -> None:
        if unprotected and self.open_since_ms is None:
            self.open_since_ms = now
        elif not unprotected and self.open_since_ms is not None:
            gap = max(0, now - self.open_since_ms)
            self.total_ms += gap
            self.max_ms = max(self.max_ms, gap)
            self.count += 1
            self.recent.append((self.open_since_ms, now))
            self.open_since_ms = None

    def report(self, now: int) -> dict[str, Any]:
        current = 0 if self.open_since_ms is None else max(0, now - self.open_since_ms)
        return {
            "unprotected_ms": self.total_ms + current,
            "max_gap_ms": max(self.max_ms, current),
            "gaps": self.count + (self.open_since_ms is not None),
            "open_since_ms": self.open_since_ms,
            "recent_gaps": [list(g) for g in self.recent],
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "total_ms": self.total_ms,
            "max_ms": self.max_ms,
            "count": self.count,
            "open_since_ms": self.open_since_ms,
            "recent": [list(g) for g in self.recent],
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SymbolGaps:
        since = raw.get("open_since_ms")
        gaps = cls(
            total_ms=int(raw.get("total_ms", 0)),
            max_ms=int(raw.get("max_ms", 0)),
            count=int(raw.get("count", 0)),
            open_since_ms=None if since is None else int(since),
        )
        gaps.recent.extend((int(a), int(b)) for a, b in raw.get("recent", []))
        return gaps


class ProtectionMeter:
    """Gaps per exchange symbol id (``BTCUSDT``)."""

    def __init__(self) -> None:
        self.symbols: dict[str, SymbolGaps] = {}

    def observe(self, sid: str, amount: Decimal, algos: Iterable[SimAlgoOrder], now: int) -> None:
        gaps = self.symbols.get(sid)
        if amount == 0:
            if gaps is not None:
                gaps.observe(False, now)
            return
        if gaps is None:
            gaps = self.symbols[sid] = SymbolGaps()
        gaps.observe(covered(amount, algos) < abs(amount), now)

    def report(self, now: int, *, unified: dict[str, str]) -> dict[str, Any]:
        """By unified symbol (``BTC/USDT:USDT``)."""
        return {unified.get(sid, sid): g.report(now) for sid, g in sorted(self.symbols.items())}

    def to_dict(self) -> dict[str, Any]:
        return {sid: g.to_dict() for sid, g in sorted(self.symbols.items())}

    def load(self, raw: object) -> None:
        """From a state file (absent in files written before the meter existed)."""
        self.symbols = {}
        if isinstance(raw, dict):
            for sid, entry in raw.items():
                if isinstance(entry, dict):
                    self.symbols[str(sid)] = SymbolGaps.from_dict(entry)
