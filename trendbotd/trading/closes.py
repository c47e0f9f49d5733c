"""Closing a position: reduce-only market orders until the exchange shows it flat.

- a close is a reduce-only market order, driven through drops with the same client id,
  repeated (new intent) only while the exchange still shows a position, never on top of
  an earlier close whose outcome is unknown;
- once flat, our stops and resting entries on the symbol are canceled;
- a stop the exchange refuses for a position that exists (-2021: the market is past it)
  closes the position at market (``close_after_refused_stop``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from trendbotd.alerts.sink import AlertSink
from trendbotd.core.domain import ZERO, OrderType, Position, Side
from trendbotd.core.records import Intent, IntentSpec, IntentState, Purpose
from trendbotd.core.stop_placement import mark_price
from trendbotd.errors import ExchangeError, TrendbotError
from trendbotd.exitcodes import ExitCode
from trendbotd.trading.executor import OrderExecutor

logger = logging.getLogger(__name__)


class CloseFailedError(TrendbotError):
    """A position could not be confirmed flat within the bounded attempts."""

    exit_code = ExitCode.UNAVAILABLE


@dataclass(frozen=True, slots=True)
class CloseResult:
    symbol: str
    flat: bool
    orders: tuple[Intent, ...]
    reason: str


class Closer:
    def __init__(
        self,
        *,
        executor: OrderExecutor,
        symbols: Sequence[str],
        close_rounds: int,
        alerts: AlertSink,
    ) -> None:
        self.executor = executor
        self.journal = executor.journal
        self.exchange = executor.exchange
        self.symbols = tuple(symbols)
        self.close_rounds = close_rounds
        self.alerts = alerts

    def close_after_refused_stop(self, stop: Intent, *, candle_time_ms: int) -> CloseResult:
        symbol = stop.symbol
        if stop.refused_would_trigger:
            mark = self._mark_for_log(symbol)
            logger.error(
                "stop.would_trigger symbol=%s stop_price=%s mark=%s cid=%s: the market is "
                "already past the stop; closing the position at market",
                symbol,
                stop.stop_price,
                mark,
                stop.client_order_id,
            )
        else:
            logger.error(
                "stop.failed symbol=%s cid=%s state=%s error=%s: closing the position",
                symbol,
                stop.client_order_id,
                stop.state,
                stop.last_error,
            )
        return self.close_position(
            symbol,
            purpose=Purpose.FLATTEN,
            candle_time_ms=candle_time_ms,
            reason=f"protective stop {stop.client_order_id} {stop.state}: {stop.last_error}",
        )

    def close_position(
        self, symbol: str, *, purpose: Purpose, candle_time_ms: int, reason: str
    ) -> CloseResult:
        """Reduce-only market orders until the exchange shows the symbol flat, then cancel
        our stops and resting entries there. Raises CloseFailedError when bounded
        attempts run out."""
        if purpose not in (Purpose.EXIT, Purpose.FLATTEN):
            raise ValueError(f"close purpose must be exit or flatten, not {purpose}")
        # a strategy exit is routine; a flatten (shutdown policy, operator) is worth a warning
        log = logger.info if purpose is Purpose.EXIT else logger.warning
        log("position.closing symbol=%s purpose=%s reason=%s", symbol, purpose.value, reason)
        self.cancel_open(symbol, Purpose.ENTRY, reason="closing the position")
        sent: list[Intent] = []
        opened: Position | None = None  # the position as first seen: its entry price for PnL
        for _ in range(self.close_rounds):
            if not self._settle_earlier_closes(symbol):
                break
            position = self.fetch_position(symbol)
            if position.is_flat:
                self._after_flat(symbol)
                logger.info("position.flat symbol=%s orders=%s", symbol, len(sent))
                self._alert_closed(symbol, purpose, reason, opened, sent)
                return CloseResult(symbol, True, tuple(sent), reason)
            opened = opened or position
            intent = self.executor.submit(
                IntentSpec(
                    symbol=symbol,
                    side=Side.SELL if position.amount > 0 else Side.BUY,
                    type=OrderType.MARKET,
                    amount=abs(position.amount),
                    purpose=purpose,
                    candle_time_ms=candle_time_ms,
                    seq=self.journal.orders.next_seq(symbol, candle_time_ms, purpose),
                    reduce_only=True,
                )
            )
            sent.append(intent)
            self.executor.crash.hit("mid_close")
        if self._settle_earlier_closes(symbol) and self.fetch_position(symbol).is_flat:
            self._after_flat(symbol)
            self._alert_closed(symbol, purpose, reason, opened, sent)
            return CloseResult(symbol, True, tuple(sent), reason)
        raise CloseFailedError(
            f"{symbol}: still not confirmed flat after {len(sent)} close orders ({reason})"
        )

    def _alert_closed(
        self,
        symbol: str,
        purpose: Purpose,
        reason: str,
        opened: Position | None,
        sent: Sequence[Intent],
    ) -> None:
        if not sent:
            return  # flat already: nothing was closed here
        self.alerts.emit(
            "position.closed",
            alert_id=f"position.closed-{sent[0].client_order_id}",
            key=symbol,
            symbol=symbol,
            purpose=purpose.value,
            reason=reason,
            amount=str(sum((i.filled for i in sent), ZERO)),
            pnl=close_pnl(opened, sent),
        )

    def _settle_earlier_closes(self, symbol: str) -> bool:
        """Drive earlier exit/flatten intents to a final state; False if one stays open."""
        ok = True
        for purpose in (Purpose.EXIT, Purpose.FLATTEN):
            for intent in self.journal.orders.open_intents(symbol, purpose=purpose):
                settled = self.executor.drive(intent, allow_resend=True)
                if not settled.state.is_final:
                    logger.error(
                        "position.close_blocked symbol=%s cid=%s state=%s",
                        symbol,
                        settled.client_order_id,
                        settled.state,
                    )
                    ok = False
        return ok

    def _after_flat(self, symbol: str) -> None:
        self.cancel_open(symbol, Purpose.STOP, reason="position is flat")
        expected = self.journal.account.expected_positions().get(symbol, ZERO)
        if expected != 0:
            logger.info("position.expected_reset symbol=%s was=%s", symbol, expected)
            self.journal.account.set_expected_position(
                symbol, ZERO, now_ms=self.executor.clock.now_ms()
            )

    def cancel_open(self, symbol: str, purpose: Purpose, *, reason: str) -> list[Intent]:
        done = []
        for intent in self.journal.orders.open_intents(symbol, purpose=purpose):
            if intent.state is IntentState.ACKED:
                done.append(self.executor.cancel(intent, reason=reason))
            else:
                done.append(self.executor.drive(intent, allow_resend=False))
        return done

    def _mark_for_log(self, symbol: str) -> Decimal | str:
        """The mark price behind a refused stop, for the log line only: a failed read must
        not delay the close that follows."""
        try:
            position = self.exchange.fetch_positions([symbol])
        except ExchangeError as e:
            return f"unknown ({e})"
        found = [p for p in position if p.symbol == symbol and not p.is_flat]
        return mark_price(found[0]) if found else "unknown (flat)"

    def fetch_position(self, symbol: str) -> Position:
        return self.fetch_positions([symbol]).get(symbol, Position(symbol, ZERO, ZERO))

    def fetch_positions(self, symbols: Sequence[str]) -> dict[str, Position]:
        """The exchange's non-flat positions (bounded retries; the last error propagates)."""
        found = self.executor.read_with_retry(
            "positions", lambda: self.exchange.fetch_positions(list(symbols))
        )
        return {p.symbol: p for p in found if not p.is_flat}


def close_pnl(opened: Position | None, closes: Sequence[Intent]) -> str | None:
    """Realised PnL of closing ``opened`` by ``closes`` (before fees, in the quote
    currency), or None when the entry or a fill price is not known."""
    if opened is None or not opened.entry_price:
        return None
    pnl = ZERO
    for close in closes:
        if close.filled <= 0:
            continue
        if close.average_price is None:
            return None
        pnl += (close.average_price - opened.entry_price) * close.filled
    return str(pnl if opened.amount > 0 else -pnl)
