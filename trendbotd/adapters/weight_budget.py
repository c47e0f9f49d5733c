"""The request-weight budget: pure decisions on plain data (no clock reads, no I/O).

Binance USD-M limits request weight per IP (2400 per minute, counters reset when the
minute starts) and new orders per account (300 per 10 s, 1200 per minute). Its answers
say what it has counted (X-MBX-USED-WEIGHT-1M, X-MBX-ORDER-COUNT-10S/-1M); a 429 asks for
a pause (Retry-After) and sending during that pause earns a 418 IP ban.

``admit`` decides whether one request may go now: nothing goes during a 429 pause or a
ban; otherwise each priority may fill the window up to its own ceiling. Below ``share``
of the limit everything goes; between ``share`` and ``urgent_share`` the ceilings rise
with urgency, so entries and candles wait for the next window while protective stops
and closes still go (the reserve is theirs). Admitted requests are counted at once, so
instances sharing the state do not all take the last slot.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import IntEnum

ORDER_WINDOW_10S_MS = 10_000
DEFAULT_BAN_MS = 120_000  # a 418 without Retry-After: Binance's shortest ban


class Priority(IntEnum):
    """Most urgent first."""

    PROTECT = 0  # protective stop, close, flatten: a reduce-only order
    CANCEL = 1
    SYNC = 2  # positions, orders, balance, clock: what the bot must know
    ENTRY = 3
    CANDLES = 4


@dataclass(frozen=True, slots=True)
class BudgetLimits:
    weight_per_window: int = 2400
    orders_per_10s: int = 300
    orders_per_window: int = 1200
    window_ms: int = 60_000
    share: float = 0.8  # everything goes below this share of each limit
    urgent_share: float = 0.95  # protective orders may go up to this share

    def __post_init__(self) -> None:
        if min(self.weight_per_window, self.orders_per_10s, self.orders_per_window) < 1:
            raise ValueError("BudgetLimits: every limit must be at least 1")
        if not 0 < self.share <= self.urgent_share <= 1:
            raise ValueError("BudgetLimits: 0 < share <= urgent_share <= 1")
        if self.window_ms < 1000:
            raise ValueError("BudgetLimits: window_ms must be at least 1000")

    def ceiling(self, priority: Priority) -> float:
        """The share of a limit requests of ``priority`` may fill: ``share`` for candles,
        rising in even steps to ``urgent_share`` for protective orders."""
        steps = len(Priority) - 1
        rank = steps - int(priority)  # CANDLES 0 .. PROTECT steps
        return self.share + (self.urgent_share - self.share) * rank / steps


@dataclass(frozen=True, slots=True)
class BudgetState:
    """What the exchange has counted (as far as we know) in the current windows."""

    window: int = -1  # index of the weight window (exchange ms // window_ms)
    weight: int = 0
    orders_10s_window: int = -1
    orders_10s: int = 0
    orders_window: int = -1
    orders: int = 0
    hold_until_ms: int = 0  # 429: nothing is sent before this
    banned_until_ms: int = 0  # 418: nothing is sent before this

    def rolled(self, now_ms: int, limits: BudgetLimits) -> BudgetState:
        """The same state with counters of past windows set back to zero."""
        window = now_ms // limits.window_ms
        window_10s = now_ms // ORDER_WINDOW_10S_MS
        state = self
        if state.window != window:
            state = dataclasses.replace(state, window=window, weight=0)
        if state.orders_window != window:
            state = dataclasses.replace(state, orders_window=window, orders=0)
        if state.orders_10s_window != window_10s:
            state = dataclasses.replace(state, orders_10s_window=window_10s, orders_10s=0)
        return state


@dataclass(frozen=True, slots=True)
class Admission:
    wait_ms: int  # 0: send now (and ``state`` counts it); else ask again after this long
    state: BudgetState
    reason: str = ""  # why it waits: "banned", "backoff", "weight", "orders"


def _until_next(now_ms: int, length_ms: int) -> int:
    return (now_ms // length_ms + 1) * length_ms - now_ms


def admit(
    state: BudgetState,
    *,
    priority: Priority,
    weight: int,
    orders: int,
    now_ms: int,
    limits: BudgetLimits,
) -> Admission:
    """May a request of this ``weight`` (and ``orders`` new orders) go at ``now_ms``?"""
    if now_ms < state.banned_until_ms:
        return Admission(state.banned_until_ms - now_ms, state, "banned")
    if now_ms < state.hold_until_ms:
        return Admission(state.hold_until_ms - now_ms, state, "backoff")
    state = state.rolled(now_ms, limits)
    share = limits.ceiling(priority)
    # A window that is still empty admits anything: a request heavier than the ceiling
    # must not wait forever.
    if weight and state.weight and state.weight + weight > share * limits.weight_per_window:
        return Admission(_until_next(now_ms, limits.window_ms), state, "weight")
    if orders:
        if state.orders_10s + orders > share * limits.orders_per_10s:
            return Admission(_until_next(now_ms, ORDER_WINDOW_10S_MS), state, "orders")
        if state.orders + orders > share * limits.orders_per_window:
            return Admission(_until_next(now_ms, limits.window_ms), state, "orders")
    counted = dataclasses.replace(
        state,
        weight=state.weight + weight,
        orders_10s=state.orders_10s + orders,
        orders=state.orders + orders,
    )
    return Admission(0, counted)


def observe(
    state: BudgetState,
    *,
    used_weight: int | None,
    orders_10s: int | None,
    orders_1m: int | None,
    sent_ms: int,
    now_ms: int,
    limits: BudgetLimits,
) -> BudgetState:
    """Take the exchange's own counts from an answer. A count is only trusted for the
    window the request was sent in: one that crossed into a new window would carry the
    old window's total into it."""
    state = state.rolled(now_ms, limits)
    if sent_ms // limits.window_ms == state.window:
        if used_weight is not None:
            state = dataclasses.replace(state, weight=max(state.weight, used_weight))
        if orders_1m is not None:
            state = dataclasses.replace(state, orders=max(state.orders, orders_1m))
    if orders_10s is not None and sent_ms // ORDER_WINDOW_10S_MS == state.orders_10s_window:
        state = dataclasses.replace(state, orders_10s=max(state.orders_10s, orders_10s))
    return state


def refused(
    state: BudgetState,
    *,
    status: int,
    retry_after_s: float | None,
    now_ms: int,
    limits: BudgetLimits,
) -> BudgetState:
    """A 429 (pause) or 418 (ban) answer: nothing goes until its Retry-After has passed.
    Without Retry-After a 429 pauses until the window rolls over, a 418 for 2 minutes."""
    if status == 418:
        wait = DEFAULT_BAN_MS if retry_after_s is None else int(retry_after_s * 1000)
        return dataclasses.replace(state, banned_until_ms=max(state.banned_until_ms, now_ms + wait))
    wait = (
        _until_next(now_ms, limits.window_ms)
        if retry_after_s is None
        else int(retry_after_s * 1000)
    )
    return dataclasses.replace(state, hold_until_ms=max(state.hold_until_ms, now_ms + wait))
