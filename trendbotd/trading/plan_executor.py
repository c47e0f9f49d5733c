"""Carry out what the planner decided, through the position manager; journal and report
what was refused."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from decimal import Decimal

from trendbotd.alerts.sink import AlertSink
from trendbotd.core.domain import OrderType
from trendbotd.core.planner import Block, Close, Enter, MoveStop
from trendbotd.core.records import Intent, IntentSpec, IntentState, Purpose
from trendbotd.journal.store import Journal
from trendbotd.trading.positions import PositionManager

logger = logging.getLogger(__name__)


class PlanExecutor:
    def __init__(self, *, positions: PositionManager, journal: Journal, alerts: AlertSink) -> None:
        self._positions = positions
        self._journal = journal
        self._alerts = alerts

    def close(self, symbol: str, close: Close, *, bar_time: int) -> bool:
        """Close the position; True once the exchange shows the symbol flat."""
        result = self._positions.close_position(
            symbol, purpose=Purpose.EXIT, candle_time_ms=bar_time, reason=close.reason
        )
        return result.flat

    def move_stop(
        self,
        symbol: str,
        move: MoveStop,
        *,
        position: Decimal,
        old: Sequence[Intent],
        bar_time: int,
    ) -> None:
        """New stop first, old ones canceled after: the position is never unprotected."""
        placed = self._positions.protect(
            symbol,
            position=position,
            stop_price=move.new_price,
            candle_time_ms=bar_time,
            parent=old[-1].parent_client_order_id if old else None,
            moved_from=old[-1].stop_price if old else None,
        )
        if placed.refused_would_trigger:
            # the market is already past the new stop: the exit it stands for is due now
            self._positions.close_after_refused_stop(placed, candle_time_ms=bar_time)
            return
        if placed.state is not IntentState.ACKED:
            logger.error("stop.move_failed symbol=%s keeping=%s", symbol, len(old))
            return
        for stale in old:
            self._positions.executor.cancel(stale, reason=f"stop moved to {move.new_price}")

    def enter(self, symbol: str, enter: Enter, *, bar_time: int) -> None:
        spec = IntentSpec(symbol, enter.side, OrderType.MARKET, enter.amount, Purpose.ENTRY,
                          bar_time, protective_stop=enter.stop_price)  # fmt: skip
        result = self._positions.open_position(spec)
        logger.info(
            "entry.done symbol=%s cid=%s state=%s filled=%s protected=%s",
            symbol,
            result.entry.client_order_id,
            result.entry.state.value,
            result.entry.filled,
            result.protected,
        )

    @staticmethod
    def skip(symbol: str, reason: str) -> None:
        logger.info("entry.skipped symbol=%s reason=%s", symbol, reason)

    def block(self, symbol: str, block: Block, *, now: int) -> None:
        log = logger.error if block.alert else logger.warning
        log("guard.blocked symbol=%s guard=%s reason=%s", symbol, block.guard, block.reason)
        if block.guard == "daily_loss" and block.alert:
            # one per UTC day and symbol: a repeated id is dropped by the outbox
            alert_id = f"risk.daily_loss_limit-{now // 86_400_000}-{symbol}"
            self._alerts.emit("risk.daily_loss_limit", alert_id=alert_id, key=symbol,
                              symbol=symbol, reason=block.reason)  # fmt: skip
        self._journal.decisions.record_guard_decision(
            at_ms=now, symbol=symbol, guard=block.guard, allowed=False, reason=block.reason,
            client_order_id=block.client_order_id,
        )  # fmt: skip
