"""One tick of the trading loop: read state -> signal -> guards -> orders -> persist.

The engine acts only on CLOSED candles, once per candle per symbol: the journal records
which candle each symbol last decided on, so a restart (or a crash mid-tick) re-runs the
same decision with the same deterministic client order ids, and the executor recognises
what it already sent. Between candles a tick only re-syncs positions and stops. Candles
come from a CandleFeed: the full window once, then only the candle that just closed.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from decimal import Decimal

from trendbotd.alerts.sink import AlertSink, NullAlertSink
from trendbotd.config import Config, ShutdownPolicy
from trendbotd.core import guards, telemetry
from trendbotd.core.domain import AccountSnapshot, Balance, Market, OrderType, Position, Side
from trendbotd.core.ports import Exchange
from trendbotd.core.reconcile import covering_stop_intents
from trendbotd.core.records import (
    DailyStart,
    Intent,
    IntentSpec,
    IntentState,
    Purpose,
    TradingMode,
)
from trendbotd.core.sizing import round_stop, size_position, to_decimal
from trendbotd.core.strategy import (
    Action,
    CandleArrays,
    Decision,
    Direction,
    PositionView,
    decide,
    required_history,
    timeframe_ms,
)
from trendbotd.errors import TransientExchangeError
from trendbotd.journal.store import Journal
from trendbotd.trading.candle_feed import CandleFeed
from trendbotd.trading.positions import PositionManager
from trendbotd.trading.sync_mode import shown_reason

logger = logging.getLogger(__name__)

# Exchanges publish a closed candle a moment after its close; asking at the exact
# millisecond returns the old bar as "forming".
CANDLE_GRACE_MS = 1_500


@dataclass(frozen=True, slots=True)
class SymbolReport:
    symbol: str
    text: str
    pending: bool = False  # the latest closed candle is still to be decided (retry soon)


class Engine:
    def __init__(
        self,
        *,
        config: Config,
        exchange: Exchange,
        journal: Journal,
        positions: PositionManager,
        snapshot: AccountSnapshot,
        alerts: AlertSink | None = None,
    ) -> None:
        self.config = config
        self._alerts: AlertSink = alerts if alerts is not None else NullAlertSink()
        self._exchange = exchange
        self._journal = journal
        self._positions = positions
        self._snapshot = snapshot
        self._markets: dict[str, Market] = dict(snapshot.markets)
        self._tf_ms = timeframe_ms(config.trading.timeframe)
        self._candles = CandleFeed(exchange, config.trading.timeframe)
        self._pending: set[str] = set()
        self._decided_bar = -1  # the oldest "last decided candle" over all symbols
        self._tick_balance: Balance | _Unfetched | None = _UNFETCHED
        # The balance the last full sync read (None: that fetch failed), and whether the
        # account can have changed since: positions moved, or an order went out this tick.
        self._synced_balance: Balance | None = snapshot.balance
        self._account_moved = True

    # ----- schedule -----

    def ms_until_next_decision(self) -> int:
        """Exchange-clock milliseconds until a closed candle awaits a decision (0: now)."""
        if self._pending:
            return 0
        now = self._exchange.server_now_ms()
        forming_open = now // self._tf_ms * self._tf_ms  # also the close of the last bar
        if self._decided_bar < forming_open - self._tf_ms:
            return max(0, forming_open + CANDLE_GRACE_MS - now)
        return forming_open + self._tf_ms + CANDLE_GRACE_MS - now

    def shutdown(self, policy: ShutdownPolicy) -> str:
        report = self._positions.shutdown(policy)
        return (
            f"policy={report.policy} canceled={len(report.canceled)} "
            f"closed={sum(1 for c in report.closed if c.flat)}"
        )

    def market(self, symbol: str) -> Market:
        return self._markets[symbol]

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    # ----- the tick -----

    def tick(self) -> str:
        """Decide first, re-sync after: the candle-close path costs one positions request
        (plus the balance for an entry) before the orders go out; the full sync --
        balance, positions, open orders, journal reconciliation -- follows every tick."""
        now = self._exchange.server_now_ms()
        self._tick_balance = _UNFETCHED
        self._account_moved = True
        reports: dict[str, SymbolReport] = {}
        due = [s for s in self.config.trading.symbols if self._is_due(s, now)]
        if due:
            self._prepare_decisions(now)
            for symbol in due:
                reports[symbol] = self._symbol_tick(symbol, now=now)
        balance = self._balance()
        snapshot = self._fresh_snapshot(now, balance)
        self._snapshot = self._positions.sync(snapshot).snapshot
        self._synced_balance = balance
        telemetry.equity(None if balance is None else balance.total)
        self._roll_daily_start(now, balance)
        ordered = [
            reports.get(symbol) or self._describe_symbol(symbol)
            for symbol in self.config.trading.symbols
        ]
        self._pending = {r.symbol for r in ordered if r.pending}
        self._decided_bar = min(
            _or_minus_one(self._journal.controls.decided_candle(symbol))
            for symbol in self.config.trading.symbols
        )
        self._journal.controls.set_last_tick(now)
        mode = self._journal.controls.mode()
        equity = f"equity {balance.total}" if balance else "balance unknown"
        head = f"{mode.mode.value} | {equity}"
        if mode.mode is not TradingMode.NORMAL:
            head += f" ({shown_reason(self._journal, mode)})"
        elif self.config.risk.reduce_only:
            head = f"{TradingMode.REDUCE_ONLY.value} | {equity} (risk.reduce_only in the config)"
        return " | ".join([head, *(r.text for r in ordered)])

    def _is_due(self, symbol: str, now: int) -> bool:
        decided = self._journal.controls.decided_candle(symbol)
        return decided is None or decided < self._last_closed_open(now)

    def _last_closed_open(self, now: int) -> int:
        return (now // self._tf_ms - 1) * self._tf_ms  # open time of the last closed bar

    def _prepare_decisions(self, now: int) -> None:
        """Make the view the decisions use current at the cost of one request.

        The last full sync (the previous tick, seconds ago) stands while the exchange's
        positions still match it and the journal's expectation, and no order of ours is in
        flight; otherwise -- a stop triggered, a fill while we were away -- the full sync
        runs first, as at start.
        """
        positions = tuple(self._exchange.fetch_positions(self.config.trading.symbols))
        in_flight = any(
            i.state is not IntentState.ACKED for i in self._journal.orders.non_final_intents()
        )
        seen = _amounts(positions)
        # Both the last sync and the journal must agree with the exchange: a stop that fired
        # between that sync's two reads leaves the snapshot flat and the journal expecting
        # the position; deciding on that would enter on top of an unreconciled journal.
        if (
            not in_flight
            and seen == _amounts(self._snapshot.positions)
            and seen == self._journal.account.expected_positions()
        ):
            self._snapshot = dataclasses.replace(
                self._snapshot, taken_at_ms=now, positions=positions
            )
            self._account_moved = False
            return
        snapshot = self._fresh_snapshot(now, self._balance())
        self._snapshot = self._positions.sync(snapshot).snapshot

    def _balance(self) -> Balance | None:
        """The balance, fetched at most once per tick; None when the fetch failed."""
        if isinstance(self._tick_balance, _Unfetched):
            try:
                self._tick_balance = self._exchange.fetch_balance()
            except TransientExchangeError as e:
                # Never read a failed fetch as zero: no new entries, exits still run.
                logger.warning("balance.fetch_failed error=%s", e)
                self._tick_balance = None
        return self._tick_balance

    def _entry_balance(self) -> Balance | None:
        """The balance to size an entry with. Flat on every symbol, with nothing filled or
        sent since the last full sync, the balance that sync read is still exact (no open
        profit moves it): the entry need not wait for another request. Otherwise fetched."""
        flat = all(p.is_flat for p in self._snapshot.positions)
        if flat and not self._account_moved and self._synced_balance is not None:
            return self._synced_balance
        return self._balance()

    def _fresh_snapshot(self, now: int, balance: Balance | None) -> AccountSnapshot:
        symbols = self.config.trading.symbols
        # Orders first: a stop that fires between the two reads then shows as a stop on a
        # flat symbol (harmless), never as a position without its stop.
        orders = self._exchange.fetch_open_orders(symbols)
        positions = tuple(self._exchange.fetch_positions(symbols))
        return dataclasses.replace(
            self._snapshot,
            taken_at_ms=now,
            balance=balance if balance is not None else self._snapshot.balance,
            positions=positions,
            open_orders=tuple(orders),
        )

    def _roll_daily_start(self, now: int, balance: Balance | None) -> DailyStart | None:
        stored = self._journal.controls.daily_start()
        rolled = guards.roll_daily_start(
            stored, now_ms=now, equity=balance.total if balance else None
        )
        if rolled is not None and rolled != stored:
            self._journal.controls.set_daily_start(rolled, now_ms=now)
            logger.info("daily.start day=%s equity=%s", rolled.day, rolled.equity)
        return rolled

    # ----- one symbol -----

    def _describe_symbol(self, symbol: str) -> SymbolReport:
        held = _describe(self._snapshot.position(symbol), self._live_stop_price(symbol))
        return SymbolReport(symbol, f"{symbol} {held}")

    def _symbol_tick(self, symbol: str, *, now: int) -> SymbolReport:
        bar_time = self._last_closed_open(now)
        position = self._snapshot.position(symbol)
        stop = self._live_stop_price(symbol)
        held = _describe(position, stop)
        params = self.config.strategy_for(symbol)
        try:
            closed = self._candles.window(
                symbol, need=required_history(params), last_open_ms=bar_time, now_ms=now
            )
        except TransientExchangeError as e:
            logger.warning("candles.fetch_failed symbol=%s error=%s", symbol, e)
            return SymbolReport(symbol, f"{symbol} {held}, candles unavailable", pending=True)
        if not closed or closed[-1].open_time_ms != bar_time:
            last = closed[-1].open_time_ms if closed else None
            logger.warning("candles.stale symbol=%s expected=%s last=%s", symbol, bar_time, last)
            return SymbolReport(symbol, f"{symbol} {held}, candle data stale", pending=True)
        view = PositionView.from_position(position, stop_price=stop)
        decision = decide(CandleArrays.from_candles(closed), params, view)
        logger.info(
            "decision symbol=%s candle=%s action=%s reason=%s",
            symbol,
            bar_time,
            decision.action.value,
            decision.reason,
        )
        price = to_decimal(closed[-1].close)
        self._act(symbol, decision, position=position, price=price, bar_time=bar_time,
                  now=now)  # fmt: skip
        self._journal.controls.set_decided_candle(symbol, bar_time, now_ms=now)
        position = self._position_after(symbol)
        return SymbolReport(
            symbol, f"{symbol} {_describe(position, self._live_stop_price(symbol))}"
        )

    def _act(
        self,
        symbol: str,
        decision: Decision,
        *,
        position: Position | None,
        price: Decimal,
        bar_time: int,
        now: int,
    ) -> None:
        action = decision.action
        if action is Action.HOLD:
            return
        try:
            if action is Action.MOVE_STOP:
                self._move_stop(symbol, decision, position=position, bar_time=bar_time)
                return
            if action in (Action.EXIT, Action.REVERSE) and position and not position.is_flat:
                closed = self._positions.close_position(
                    symbol, purpose=Purpose.EXIT, candle_time_ms=bar_time, reason=decision.reason
                )
                self._account_moved = True  # a reversal's entry sizes on the balance after it
                if not closed.flat:
                    return  # never open the other way on top of what is left
                # The exchange confirmed flat: the entry's guards must not see the old position.
                self._snapshot = dataclasses.replace(
                    self._snapshot,
                    positions=tuple(p for p in self._snapshot.positions if p.symbol != symbol),
                )
            if action in (Action.ENTER, Action.REVERSE):
                self._enter(symbol, decision, price=price, bar_time=bar_time, now=now)
        finally:
            self._account_moved = True  # whatever this sent, later entries fetch the balance

    def _move_stop(
        self, symbol: str, decision: Decision, *, position: Position | None, bar_time: int
    ) -> None:
        if position is None or position.is_flat or decision.stop_price is None:
            return
        market = self._markets[symbol]
        new_stop = round_stop(decision.stop_price, long=position.amount > 0, market=market)
        old = self._live_stops(symbol)
        if any(s.stop_price == new_stop and s.amount == abs(position.amount) for s in old):
            return
        # New stop first, old one cancelled after: the position is never unprotected.
        placed = self._positions.protect(
            symbol,
            position=position.amount,
            stop_price=new_stop,
            candle_time_ms=bar_time,
            parent=old[-1].parent_client_order_id if old else None,
            moved_from=old[-1].stop_price if old else None,
        )
        if placed.refused_would_trigger:
            # the market is already past the new stop: the exit it stands for is due now
            self._positions.close_after_refused_stop(placed, candle_time_ms=bar_time)
            self._account_moved = True
            return
        if placed.state is not IntentState.ACKED:
            logger.error("stop.move_failed symbol=%s keeping=%s", symbol, len(old))
            return
        for stale in old:
            self._positions.executor.cancel(stale, reason=f"stop moved to {new_stop}")

    def _enter(
        self,
        symbol: str,
        decision: Decision,
        *,
        price: Decimal,
        bar_time: int,
        now: int,
    ) -> None:
        if decision.stop_price is None or decision.direction is Direction.FLAT:
            return
        side = Side.BUY if decision.direction is Direction.LONG else Side.SELL
        balance = self._entry_balance()  # sizing and the daily loss guard need it
        daily = self._roll_daily_start(now, balance)
        if balance is None:
            self._record_block(symbol, now, "balance_sanity", "balance unknown: no new entries")
            return
        risk = self.config.risk
        sizing = size_position(
            equity=balance.total,
            entry_price=price,
            stop_price=to_decimal(decision.stop_price),
            risk_per_trade=risk.risk_per_trade,
            max_leverage=self.config.trading.leverage,
            max_notional=risk.max_notional,
            market=self._markets[symbol],
        )
        if not sizing.ok:
            logger.info("entry.skipped symbol=%s reason=%s", symbol, sizing.skip_reason)
            return
        spec = IntentSpec(
            symbol=symbol,
            side=side,
            type=OrderType.MARKET,
            amount=sizing.amount,
            purpose=Purpose.ENTRY,
            candle_time_ms=bar_time,
            protective_stop=sizing.stop_price,
        )
        cid = self._positions.executor.client_id(spec)
        proposed = guards.ProposedOrder(
            symbol=symbol,
            side=side,
            type=OrderType.MARKET,
            amount=sizing.amount,
            purpose=Purpose.ENTRY,
            reference_price=sizing.entry_price,
            client_order_id=cid,
        )
        window_ms = int(max(risk.duplicate_window_s, 1) * 1000)
        context = guards.GuardContext(
            now_ms=now,
            mode=self._journal.controls.mode().mode,
            balance=balance,
            positions={p.symbol: p for p in self._snapshot.positions if not p.is_flat},
            expected=self._journal.account.expected_positions(),
            recent=self._journal.orders.intents_since(now - window_ms, symbol=symbol),
            daily_start=daily,
            leverage=self.config.trading.leverage,
        )
        blocked = guards.first_block(guards.check_all(proposed, context, risk))
        if blocked is not None:
            self._record_block(symbol, now, blocked.guard, blocked.reason, cid=cid,
                               alert=blocked.alert)  # fmt: skip
            return
        result = self._positions.open_position(spec)
        logger.info(
            "entry.done symbol=%s cid=%s state=%s filled=%s protected=%s",
            symbol,
            result.entry.client_order_id,
            result.entry.state.value,
            result.entry.filled,
            result.protected,
        )

    # ----- helpers -----

    def _record_block(
        self,
        symbol: str,
        now: int,
        guard: str,
        reason: str,
        *,
        cid: str | None = None,
        alert: bool = False,
    ) -> None:
        log = logger.error if alert else logger.warning
        log("guard.blocked symbol=%s guard=%s reason=%s", symbol, guard, reason)
        if guard == "daily_loss" and alert:
            # one per UTC day and symbol: a repeated id is dropped by the outbox
            self._alerts.emit(
                "risk.daily_loss_limit",
                alert_id=f"risk.daily_loss_limit-{now // 86_400_000}-{symbol}",
                key=symbol,
                symbol=symbol,
                reason=reason,
            )
        self._journal.decisions.record_guard_decision(
            at_ms=now, symbol=symbol, guard=guard, allowed=False, reason=reason,
            client_order_id=cid,
        )  # fmt: skip

    def _live_stops(self, symbol: str) -> list[Intent]:
        return [
            i
            for i in self._journal.orders.open_intents(symbol, purpose=Purpose.STOP)
            if i.state is IntentState.ACKED
        ]

    def _live_stop_price(self, symbol: str) -> Decimal | None:
        """The newest live stop that closes the expected position (never a stale one on
        the other side)."""
        expected = self._journal.account.expected_positions().get(symbol, Decimal(0))
        stops = covering_stop_intents(self._live_stops(symbol), symbol, expected)
        return stops[-1].stop_price if stops else None

    def _position_after(self, symbol: str) -> Position | None:
        expected = self._journal.account.expected_positions().get(symbol)
        before = self._snapshot.position(symbol)
        if expected is None:
            return before
        entry = before.entry_price if before is not None else Decimal(0)
        return Position(symbol=symbol, amount=expected, entry_price=entry)


class _Unfetched:
    """The balance has not been fetched this tick (None means the fetch failed)."""


_UNFETCHED = _Unfetched()


def _amounts(positions: tuple[Position, ...]) -> dict[str, Decimal]:
    return {p.symbol: p.amount for p in positions if not p.is_flat}


def _describe(position: Position | None, stop: Decimal | None) -> str:
    if position is None or position.is_flat:
        return "flat"
    side = "long" if position.amount > 0 else "short"
    text = f"{side} {abs(position.amount)}"
    if position.entry_price:
        text += f" @{position.entry_price}"
    return text + (f" stop {stop}" if stop is not None else " NO STOP")


def _or_minus_one(candle_ms: int | None) -> int:
    return -1 if candle_ms is None else candle_ms
