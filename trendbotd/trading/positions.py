"""Positions on top of the executor: entries that get their stop, closes that end flat,
the startup resolver and periodic sync, and the shutdown policy.

Rules kept here:
- an entry's reduce-only STOP_MARKET (algo) order is placed before the entry; if it
  cannot be placed the entry is not sent, if the entry fills nothing it is canceled;
- a stop the exchange refuses for a position that exists (-2021: the market is past it)
  closes the position at market;
- a close is a reduce-only market order, driven through drops with the same client id,
  repeated (new intent) only while the exchange still shows a position, never on top of
  an earlier close whose outcome is unknown;
- sync (trading/position_sync.py) resolves every non-final intent by client id,
  reconciles, adopts what happened while the bot was down, protects every position
  found without a stop, and puts the bot in reduce-only mode on anything it cannot
  explain.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from trendbotd.alerts.sink import AlertSink, NullAlertSink
from trendbotd.config import ShutdownPolicy
from trendbotd.core.domain import ZERO, AccountSnapshot, OrderType, Position, Side
from trendbotd.core.reconcile import (
    closing_side,
    covering_stop_intents,
)
from trendbotd.core.records import Intent, IntentSpec, IntentState, Purpose
from trendbotd.core.stop_placement import mark_price
from trendbotd.errors import ExchangeError, TrendbotError
from trendbotd.exitcodes import ExitCode
from trendbotd.trading.executor import OrderExecutor
from trendbotd.trading.position_sync import SyncResult, run_sync

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


@dataclass(frozen=True, slots=True)
class OpenResult:
    entry: Intent
    stop: Intent | None
    close: CloseResult | None  # set when the stop failed and the position was closed

    @property
    def protected(self) -> bool:
        return self.stop is not None and self.stop.state is IntentState.ACKED


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

    # ----- entries and stops -----

    def open_position(self, entry: IntentSpec) -> OpenResult:
        """Place the entry's stop, then send the entry; cancel the stop if nothing fills.

        The stop goes first so the position is covered from its first instant: a
        reduce-only stop waits harmlessly while there is no position. If it cannot be
        placed, the entry is journalled as abandoned and never sent. The same decision
        made again (a restart re-running it) sends nothing new: the entry and its stop are
        found in the journal, and the protection of a settled entry belongs to sync.
        """
        if entry.purpose is not Purpose.ENTRY or entry.protective_stop is None:
            raise ValueError("open_position needs an entry intent with its protective_stop")
        cid = self.executor.client_id(entry)
        prior = self.journal.orders.get_intent(cid)
        placed: Intent | None = None
        if prior is None:
            self.executor.require_entries_allowed(cid)  # before the stop, not after it
            stop = self._stop_before_entry(entry, cid)
            if stop.state is not IntentState.ACKED:
                self._alert_stop(stop, moved_from=None)
                return self._abandon_entry(entry, stop)
            placed = stop
            self.executor.crash.hit("between_stop_and_entry")
        intent = self.executor.submit(entry)
        if placed is not None:  # reported once the entry is out: no alert delays it
            self._alert_stop(placed, moved_from=None)
        if intent.filled > 0 and (prior is None or prior.filled != intent.filled):
            self._alert_entry(intent)
        if intent.filled <= 0:
            if intent.state.is_final:  # rejected, expired, abandoned: nothing to protect
                self._cancel_entry_stops(intent, reason=f"entry {intent.state}")
            return OpenResult(intent, None, None)
        if prior is not None and prior.state.is_final:
            live = self._live_stops(entry.symbol)
            return OpenResult(intent, live[-1] if live else None, None)
        self.executor.crash.hit("between_fill_and_stop")
        # A partial fill keeps the entry-sized stop: reduce-only, it never closes more
        # than the position, so being larger than the fill is safe.
        return self._protect_entry(intent, entry.protective_stop)

    def _alert_entry(self, entry: Intent) -> None:
        # the id follows the order: a restart that sees the same fill adds no second alert
        self.alerts.emit(
            "entry.filled",
            alert_id=f"entry.filled-{entry.client_order_id}-{entry.filled}",
            key=entry.symbol,
            symbol=entry.symbol,
            side=entry.side.value,
            amount=str(entry.filled),
            price=None if entry.average_price is None else str(entry.average_price),
            state=entry.state.value,
            cid=entry.client_order_id,
        )

    def _stop_before_entry(self, entry: IntentSpec, entry_cid: str) -> Intent:
        """The entry's stop for the entry's whole amount, journalled (and placed) before
        the entry intent exists. One left by an earlier run of this decision is reused."""
        for stop in self.journal.orders.open_intents(entry.symbol, purpose=Purpose.STOP):
            if stop.parent_client_order_id == entry_cid and stop.state is IntentState.ACKED:
                return stop
        assert entry.protective_stop is not None
        signed = entry.amount if entry.side is Side.BUY else -entry.amount
        return self.protect(
            entry.symbol,
            position=signed,
            stop_price=entry.protective_stop,
            candle_time_ms=entry.candle_time_ms,
            parent=entry_cid,
            alert=False,
        )

    def _abandon_entry(self, entry: IntentSpec, stop: Intent) -> OpenResult:
        logger.error(
            "entry.abandoned symbol=%s stop_cid=%s stop_state=%s trigger=%s error=%s: "
            "no stop, no entry",
            entry.symbol,
            stop.client_order_id,
            stop.state,
            stop.stop_price,
            stop.last_error,
        )
        # A stop whose outcome is unknown may exist: once resolved, sync cancels it as a
        # stop on a flat symbol.
        abandoned = self.executor.record_unsent(
            entry, reason=f"protective stop {stop.client_order_id} {stop.state}: {stop.last_error}"
        )
        return OpenResult(abandoned, stop, None)

    def _cancel_entry_stops(self, entry: Intent, *, reason: str) -> None:
        for stop in self.journal.orders.open_intents(entry.symbol, purpose=Purpose.STOP):
            if stop.parent_client_order_id != entry.client_order_id:
                continue
            if stop.state is IntentState.ACKED:
                self.executor.cancel(stop, reason=reason)
            else:
                self.executor.drive(stop, allow_resend=False)

    def _live_stops(self, symbol: str) -> list[Intent]:
        """Our live stops that close the position the journal expects on ``symbol``."""
        expected = self.journal.account.expected_positions().get(symbol, ZERO)
        stops = self.journal.orders.open_intents(symbol, purpose=Purpose.STOP)
        return covering_stop_intents(stops, symbol, expected)

    def _protect_entry(self, entry: Intent, stop_price: Decimal) -> OpenResult:
        """Cover what the journal expects on the symbol and live stops do not yet cover."""
        live = self._live_stops(entry.symbol)
        expected = self.journal.account.expected_positions().get(entry.symbol, ZERO)
        gap = abs(expected) - sum((i.amount for i in live), ZERO)
        if gap <= 0:
            return OpenResult(entry, live[-1] if live else None, None)
        stop, close = self.protect_or_close(
            entry.symbol,
            position=gap if expected > 0 else -gap,
            stop_price=stop_price,
            candle_time_ms=entry.candle_time_ms,
            parent=entry.client_order_id,
        )
        return OpenResult(entry, stop, close)

    def protect_or_close(
        self,
        symbol: str,
        *,
        position: Decimal,
        stop_price: Decimal,
        candle_time_ms: int,
        parent: str | None,
    ) -> tuple[Intent, CloseResult | None]:
        """A stop for ``position`` (signed); if the exchange refuses it, close at market:
        a position must not stay open without its stop."""
        stop = self.protect(
            symbol,
            position=position,
            stop_price=stop_price,
            candle_time_ms=candle_time_ms,
            parent=parent,
        )
        if stop.state is IntentState.ACKED:
            return stop, None
        return stop, self.close_after_refused_stop(stop, candle_time_ms=candle_time_ms)

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
        """Place a reduce-only STOP_MARKET covering ``position`` (signed). ``moved_from``:
        the trigger of the stop this one replaces (reported as a move, not a new stop).
        ``alert=False``: the caller reports it (after the entry the stop goes first for)."""
        seq = self.journal.orders.next_seq(symbol, candle_time_ms, Purpose.STOP)
        stop = self.executor.submit(
            IntentSpec(
                symbol=symbol,
                side=closing_side(position),
                type=OrderType.STOP_MARKET,
                amount=abs(position),
                purpose=Purpose.STOP,
                candle_time_ms=candle_time_ms,
                seq=seq,
                stop_price=stop_price,
                reduce_only=True,
                parent_client_order_id=parent,
            )
        )
        logger.info(
            "stop.%s symbol=%s cid=%s amount=%s trigger=%s",
            "placed" if stop.state is IntentState.ACKED else "not_placed",
            symbol,
            stop.client_order_id,
            stop.amount,
            stop_price,
        )
        if alert:
            self._alert_stop(stop, moved_from=moved_from)
        return stop

    def _alert_stop(self, stop: Intent, *, moved_from: Decimal | None) -> None:
        common = {
            "symbol": stop.symbol,
            "side": stop.side.value,
            "amount": str(stop.amount),
            "trigger": str(stop.stop_price),
            "cid": stop.client_order_id,
        }
        if stop.state is not IntentState.ACKED:
            self.alerts.emit(
                "stop.failed",
                alert_id=f"stop.failed-{stop.client_order_id}",
                key=stop.symbol,
                state=stop.state.value,
                error=stop.last_error,
                **common,
            )
        elif moved_from is not None:
            self.alerts.emit(
                "stop.moved",
                alert_id=f"stop.moved-{stop.client_order_id}",
                key=stop.symbol,
                moved_from=str(moved_from),
                **common,
            )
        else:
            self.alerts.emit(
                "stop.placed", alert_id=f"stop.placed-{stop.client_order_id}", key=stop.symbol,
                **common,
            )  # fmt: skip

    # ----- closing -----

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
        self._cancel_open(symbol, Purpose.ENTRY, reason="closing the position")
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
        self._cancel_open(symbol, Purpose.STOP, reason="position is flat")
        expected = self.journal.account.expected_positions().get(symbol, ZERO)
        if expected != 0:
            logger.info("position.expected_reset symbol=%s was=%s", symbol, expected)
            self.journal.account.set_expected_position(
                symbol, ZERO, now_ms=self.executor.clock.now_ms()
            )

    def _cancel_open(self, symbol: str, purpose: Purpose, *, reason: str) -> list[Intent]:
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
                canceled += self._cancel_open(symbol, Purpose.ENTRY, reason="shutdown")
        return ShutdownReport(policy, tuple(canceled), tuple(closed))

    def flatten(
        self, symbols: Sequence[str], *, reason: str, policy: ShutdownPolicy = "flatten"
    ) -> ShutdownReport:
        """Cancel resting entries on ``symbols``, then close each of them that holds a
        position (reduce-only market orders; its stops stay until the exchange shows it
        flat). The shutdown policy ``flatten`` and the operator's ``trendbotd flatten``."""
        canceled: list[Intent] = []
        for symbol in symbols:
            canceled += self._cancel_open(symbol, Purpose.ENTRY, reason=reason)
        now = self.executor.clock.now_ms()
        closed = [
            self.close_position(
                symbol, purpose=Purpose.FLATTEN, candle_time_ms=now // 1000 * 1000, reason=reason
            )
            for symbol in sorted(self.fetch_positions(symbols))
        ]
        return ShutdownReport(policy, tuple(canceled), tuple(closed))


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
