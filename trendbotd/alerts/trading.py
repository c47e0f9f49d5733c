"""Pure decisions behind the trading alerts that are about a change of state, not a single
act: which mode alerts a mode change means, and when an exchange outage is worth an alert.

The caller (trading/events.py) reads the state and emits; nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from trendbotd.core.records import TradingMode

_ENTERED = {
    TradingMode.REDUCE_ONLY: "mode.reduce_only_entered",
    TradingMode.HALTED: "mode.halted_entered",
}
_LEFT = {
    TradingMode.REDUCE_ONLY: "mode.reduce_only_left",
    TradingMode.HALTED: "mode.halted_left",
}


def mode_events(before: TradingMode, after: TradingMode) -> tuple[str, ...]:
    """The catalogued events of a change from ``before`` to ``after``: the mode left
    first, then the mode entered (reduce-only -> halted is both)."""
    if before is after:
        return ()
    left = (_LEFT[before],) if before in _LEFT else ()
    entered = (_ENTERED[after],) if after in _ENTERED else ()
    return left + entered


@dataclass(slots=True)
class Outage:
    """Tracks one exchange outage on a monotonic clock (seconds).

    ``failed`` after each request round that found the exchange unreachable returns True
    once, when the outage has lasted ``alert_after_s``; ``succeeded`` returns the outage's
    length when that alert went out (the "back" alert is due), else None. A short blip
    that ends before ``alert_after_s`` alerts nobody.
    """

    alert_after_s: float
    since: float | None = None
    alerted: bool = False

    def failed(self, now: float) -> bool:
        if self.since is None:
            self.since = now
        if self.alerted or now - self.since < self.alert_after_s:
            return False
        self.alerted = True
        return True

    def down_for(self, now: float) -> float:
        return 0.0 if self.since is None else now - self.since

    def succeeded(self, now: float) -> float | None:
        lasted = self.down_for(now)
        alerted = self.alerted
        self.since, self.alerted = None, False
        return lasted if alerted else None
