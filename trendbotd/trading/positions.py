"""The position manager: what the engine, the runner and the operator ask of positions.

It owns no order path itself; each job has its module and is called for an outcome:
- an entry with its stop: ``trading/order_flow.py`` (``OrderFlow.enter``);
- one intent (journal -> gates -> send -> resolve): ``trading/executor.py``;
- a close until flat: ``trading/closes.py``;
- the startup resolver and periodic sync: ``trading/position_sync.py`` (resolves every
  non-final intent by client id, reconciles, adopts what happened while the bot was down,
  protects every position found without a stop, and puts the bot in reduce-only mode on
  anything it cannot explain);
- the shutdown policy: here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from trendbotd.alerts.sink import AlertSink, NullAlertSink
from trendbotd.config import ShutdownPolicy
from trendbotd.core.domain import AccountSnapshot, Position
from trendbotd.core.records import Intent, IntentSpec, Purpose
from trendbotd.trading.closes import CloseFailedError, Closer, CloseResult, close_pnl
from trendbotd.trading.executor import OrderExecutor
from trendbotd.trading.order_flow import EntryOutcome, OrderFlow
from trendbotd.trading.position_sync import SyncResult, run_sync

__all__ = [
    "CloseFailedError",
    "CloseResult",
    "OpenResult",
    "PositionManager",
    "ShutdownReport",
    "close_pnl",
]

logger = logging.getLogger(__name__)

OpenResult = EntryOutcome  # the name callers and tests know


@dataclass(frozen=True, slots=True)
class ShutdownReport:
    policy: ShutdownPolicy
    canceled: tuple[Intent, ...]
    closed: tuple[CloseResult, ...]


class PositionManager:
    def __init__(
        self,
        *,
        executor: OrderExecutor,
        symbols: Sequence[str],
        close_rounds: int,
        emergency_stop_distance: Decimal = Decimal("0.05"),
        alerts: AlertSink | None = None,
    ) -> None:
        """``emergency_stop_distance``: how far from the mark (a fraction) sync places the
        stop of a position found without one and without a known stop price. ``alerts``:
        where fills, stops and closes are reported (emit only queues: never blocks)."""
        self.executor = executor
        self.alerts: AlertSink = alerts if alerts is not None else NullAlertSink()
        self.emergency_stop_distance = emergency_stop_distance
        self.journal = executor.journal
        self.exchange = executor.exchange
        self.symbols = tuple(symbols)
        self.close_rounds = close_rounds
        self.closer = Closer(
            executor=executor, symbols=symbols, close_rounds=close_rounds, alerts=self.alerts
        )
        self.flow = OrderFlow(executor=executor, closer=self.closer, alerts=self.alerts)

    # ----- entries and stops (trading/order_flow.py) -----

    def open_position(self, entry: IntentSpec) -> EntryOutcome:
        """The entry with its stop placed first (``OrderFlow.enter``)."""
        return self.flow.enter(entry)

    def protect(
        self,
        symbol: str,
        *,
        position: Decimal,
        stop_price: Decimal,
        candle_time_ms: int,
        parent: str | None,
        moved_from: Decimal | None = None,
        alert: bool = True,
    ) -> Intent:
        """A reduce-only STOP_MARKET covering ``position`` (``OrderFlow.place_stop``)."""
        return self.flow.place_stop(
            symbol,
            position=position,
            stop_price=stop_price,
            candle_time_ms=candle_time_ms,
            parent=parent,
            moved_from=moved_from,
            alert=alert,
        )

    def protect_or_close(
        self,
        symbol: str,
        *,
        position: Decimal,
        stop_price: Decimal,
        candle_time_ms: int,
        parent: str | None,
    ) -> tuple[Intent, CloseResult | None]:
        """A stop, or a close at market if the exchange refuses it."""
        return self.flow.protect_or_close(
            symbol,
            position=position,
            stop_price=stop_price,
            candle_time_ms=candle_time_ms,
            parent=parent,
        )

    # ----- closing (trading/closes.py) -----

    def close_after_refused_stop(self, stop: Intent, *, candle_time_ms: int) -> CloseResult:
        return self.closer.close_after_refused_stop(stop, candle_time_ms=candle_time_ms)

    def close_position(
        self, symbol: str, *, purpose: Purpose, candle_time_ms: int, reason: str
    ) -> CloseResult:
        """Reduce-only market orders until flat (``Closer.close_position``)."""
        return self.closer.close_position(
            symbol, purpose=purpose, candle_time_ms=candle_time_ms, reason=reason
        )

    def fetch_position(self, symbol: str) -> Position:
        return self.closer.fetch_position(symbol)

    def fetch_positions(self, symbols: Sequence[str]) -> dict[str, Position]:
        return self.closer.fetch_positions(symbols)

    # ----- startup resolver and sync -----

    def sync(self, snapshot: AccountSnapshot) -> SyncResult:
        """Resolve every non-final intent by client id, reconcile, act on the result
        (see trading/position_sync.py)."""
        return run_sync(self, snapshot)

    # ----- shutdown -----

    def shutdown(self, policy: ShutdownPolicy) -> ShutdownReport:
        """``leave``: positions stay with their exchange-side stops; ``cancel_entries``:
        also cancel resting entry orders; ``flatten``: cancel entries and close every
        position (stops are canceled once flat)."""
        logger.info("shutdown.policy policy=%s", policy)
        canceled: list[Intent] = []
        closed: list[CloseResult] = []
        if policy == "flatten":
            return self.flatten(self.symbols, reason="shutdown policy flatten", policy=policy)
        if policy == "cancel_entries":
            for symbol in self.symbols:
                canceled += self.closer.cancel_open(symbol, Purpose.ENTRY, reason="shutdown")
        return ShutdownReport(policy, tuple(canceled), tuple(closed))

    def flatten(
        self, symbols: Sequence[str], *, reason: str, policy: ShutdownPolicy = "flatten"
    ) -> ShutdownReport:
        """Cancel resting entries on ``symbols``, then close each of them that holds a
        position (reduce-only market orders; its stops stay until the exchange shows it
        flat). The shutdown policy ``flatten`` and the operator's ``trendbotd flatten``."""
        canceled: list[Intent] = []
        for symbol in symbols:
            canceled += self.closer.cancel_open(symbol, Purpose.ENTRY, reason=reason)
        now = self.executor.clock.now_ms()
        closed = [
            self.closer.close_position(
                symbol, purpose=Purpose.FLATTEN, candle_time_ms=now // 1000 * 1000, reason=reason
            )
            for symbol in sorted(self.closer.fetch_positions(symbols))
        ]
        return ShutdownReport(policy, tuple(canceled), tuple(closed))
