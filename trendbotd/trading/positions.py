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
from trendbotd.core.domain import AccountSnapshot
from trendbotd.core.records import Intent, Purpose
from trendbotd.trading.closes import CloseFailedError, Closer, CloseResult, close_pnl
from trendbotd.trading.executor import OrderExecutor
from trendbotd.trading.order_flow import OrderFlow
from trendbotd.trading.position_sync import SyncResult, run_sync

__all__ = [
    "CloseFailedError",
    "CloseResult",
    "PositionManager",
    "ShutdownReport",
    "close_pnl",
]

logger = logging.getLogger(__name__)


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
        # What the engine, the runner and the operator ask, answered by the job's owner:
        # an entry with its stop placed first, a stop (or a close if it is refused) ...
        self.open_position = self.flow.enter
        self.protect = self.flow.place_stop
        self.protect_or_close = self.flow.protect_or_close
        # ... and reduce-only market orders until the exchange shows the symbol flat.
        self.close_position = self.closer.close_position
        self.close_after_refused_stop = self.closer.close_after_refused_stop
        self.fetch_position = self.closer.fetch_position
        self.fetch_positions = self.closer.fetch_positions

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
            self.close_position(
                symbol, purpose=Purpose.FLATTEN, candle_time_ms=now // 1000 * 1000, reason=reason
            )
            for symbol in sorted(self.fetch_positions(symbols))
        ]
        return ShutdownReport(policy, tuple(canceled), tuple(closed))
