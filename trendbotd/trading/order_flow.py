"""One owner for an entry's lifecycle, readable top to bottom in ``enter``:

    gates      the trading mode allows entries (before anything is sent)
    protect    the entry's reduce-only STOP_MARKET (algo) order is journalled and placed
               first; if it cannot be placed, the entry is journalled abandoned, never sent
    journal -> gates -> send -> resolve
               the entry itself (``OrderExecutor.submit``: write-ahead intent, cluster
               fence, one send, bounded queries by client id, adopt or abandon)
    protect    nothing filled: the stop is canceled; a partial fill keeps the entry-sized
               stop (reduce-only, it never closes more than the position); the journal's
               expected position not yet covered by live stops gets one more stop, and a
               stop the exchange refuses closes the position at market (``Closer``)

The position manager asks ``enter(spec)`` for an ``EntryOutcome``; the stops that sync
and the engine place (``place_stop``, ``protect_or_close``) take the same path. Crash
points fired here: ``between_stop_and_entry``, ``between_fill_and_stop``.

Worst case of one entry: two orders (the stop, then the entry), each as stated in
``trading/executor.py`` (one send, then bounded queries by client id), one query of the
stop once the entry has filled (still live?), plus at most one more stop and, if that stop
is refused, one close (``trading/closes.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

from trendbotd.alerts.sink import AlertSink
from trendbotd.core.domain import ZERO, OrderType, Side
from trendbotd.core.reconcile import closing_side, covering_stop_intents
from trendbotd.core.records import Intent, IntentSpec, IntentState, Purpose
from trendbotd.trading.closes import Closer, CloseResult
from trendbotd.trading.executor import OrderExecutor

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EntryOutcome:
    entry: Intent
    stop: Intent | None
    close: CloseResult | None  # set when the stop failed and the position was closed

    @property
    def protected(self) -> bool:
        return self.stop is not None and self.stop.state is IntentState.ACKED


class OrderFlow:
    def __init__(self, *, executor: OrderExecutor, closer: Closer, alerts: AlertSink) -> None:
        """``alerts``: where fills and stops are reported (emit only queues: never blocks)."""
        self.executor = executor
        self.journal = executor.journal
        self.closer = closer
        self.alerts = alerts

    def enter(self, entry: IntentSpec) -> EntryOutcome:
        """Place the entry's stop, then send the entry; cancel the stop if nothing fills.

        The stop goes first so the position is covered from its first instant: a
        reduce-only stop waits harmlessly while there is no position. If it cannot be
        placed, the entry is journalled as abandoned and never sent. The same decision
        made again (a restart re-running it) sends nothing new: the entry and its stop are
        found in the journal, and the protection of a settled entry belongs to sync.
        """
        if entry.purpose is not Purpose.ENTRY or entry.protective_stop is None:
            raise ValueError("enter needs an entry intent with its protective_stop")
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
            return EntryOutcome(intent, None, None)
        if prior is not None and prior.state.is_final:
            live = self.live_stops(entry.symbol)
            return EntryOutcome(intent, live[-1] if live else None, None)
        self.executor.crash.hit("between_fill_and_stop")
        if placed is not None:
            # The market may have passed the stop while the account was still flat: a
            # reduce-only stop with nothing to reduce then expires, and the entry fills
            # with no stop. One query by client id; a stop that is gone leaves a gap that
            # protect_entry covers (or, the price being past it, closes at market).
            self.executor.refresh(placed)
        # A partial fill keeps the entry-sized stop: reduce-only, it never closes more
        # than the position, so being larger than the fill is safe.
        return self.protect_entry(intent, entry.protective_stop)

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
        return self.place_stop(
            entry.symbol,
            position=signed,
            stop_price=entry.protective_stop,
            candle_time_ms=entry.candle_time_ms,
            parent=entry_cid,
            alert=False,
        )

    def _abandon_entry(self, entry: IntentSpec, stop: Intent) -> EntryOutcome:
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
        abandoned = self.executor.book.record_unsent(
            entry, reason=f"protective stop {stop.client_order_id} {stop.state}: {stop.last_error}"
        )
        return EntryOutcome(abandoned, stop, None)

    def _cancel_entry_stops(self, entry: Intent, *, reason: str) -> None:
        for stop in self.journal.orders.open_intents(entry.symbol, purpose=Purpose.STOP):
            if stop.parent_client_order_id != entry.client_order_id:
                continue
            if stop.state is IntentState.ACKED:
                self.executor.cancel(stop, reason=reason)
            else:
                self.executor.drive(stop, allow_resend=False)

    def live_stops(self, symbol: str) -> list[Intent]:
        """Our live stops that close the position the journal expects on ``symbol``."""
        expected = self.journal.account.expected_positions().get(symbol, ZERO)
        stops = self.journal.orders.open_intents(symbol, purpose=Purpose.STOP)
        return covering_stop_intents(stops, symbol, expected)

    def protect_entry(self, entry: Intent, stop_price: Decimal) -> EntryOutcome:
        """Cover what the journal expects on the symbol and live stops do not yet cover."""
        live = self.live_stops(entry.symbol)
        expected = self.journal.account.expected_positions().get(entry.symbol, ZERO)
        gap = abs(expected) - sum((i.amount for i in live), ZERO)
        if gap <= 0:
            return EntryOutcome(entry, live[-1] if live else None, None)
        stop, close = self.protect_or_close(
            entry.symbol,
            position=gap if expected > 0 else -gap,
            stop_price=stop_price,
            candle_time_ms=entry.candle_time_ms,
            parent=entry.client_order_id,
        )
        return EntryOutcome(entry, stop, close)

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
        stop = self.place_stop(
            symbol,
            position=position,
            stop_price=stop_price,
            candle_time_ms=candle_time_ms,
            parent=parent,
        )
        if stop.state is IntentState.ACKED:
            return stop, None
        return stop, self.closer.close_after_refused_stop(stop, candle_time_ms=candle_time_ms)

    def place_stop(
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
