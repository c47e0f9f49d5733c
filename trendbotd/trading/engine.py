"""One tick of the trading loop: gather one view -> plan (pure) -> execute the plan -> report.

The engine acts only on CLOSED candles, once per candle per symbol: the journal records
which candle each symbol last decided on, so a restart (or a crash mid-tick) re-runs the
same decision with the same deterministic client order ids, and the executor recognises
what it already sent. Between candles a tick only re-syncs positions and stops. Candles
come from a CandleFeed: the full window once, then only the candle that just closed.
What to do is decided by ``core/planner.py`` (the backtest calls the same planner); the
engine gathers what it needs (trading/account_reads.py, trading/tick_view.py) and
carries the plan out (trading/plan_executor.py).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from trendbotd.alerts.sink import AlertSink, NullAlertSink
from trendbotd.config import Config, ShutdownPolicy
from trendbotd.core import guards, telemetry
from trendbotd.core.domain import AccountSnapshot, Balance, Candle, Market, Position
from trendbotd.core.planner import (
    Block,
    Close,
    EntryDue,
    EntryView,
    GuardInputs,
    MoveStop,
    Planned,
    SizingRules,
    Skip,
    decide_symbol,
    plan,
    plan_entry,
)
from trendbotd.core.ports import Exchange
from trendbotd.core.records import DailyStart, IntentState, TradingMode
from trendbotd.core.sizing import to_decimal
from trendbotd.core.strategy import required_history, timeframe_ms
from trendbotd.errors import TransientExchangeError
from trendbotd.journal.store import Journal
from trendbotd.trading import status_text
from trendbotd.trading.account_reads import AccountReads, LastSync
from trendbotd.trading.candle_feed import CandleFeed
from trendbotd.trading.plan_executor import PlanExecutor
from trendbotd.trading.positions import PositionManager
from trendbotd.trading.tick_view import JournalSymbol, WindowAsk, fetch_windows, read_symbol

logger = logging.getLogger(__name__)

# Exchanges publish a closed candle a moment after its close; asking at the exact
# millisecond returns the old bar as "forming".
CANDLE_GRACE_MS = 1_500


@dataclass(frozen=True, slots=True)
class SymbolReport:
    symbol: str
    text: str
    pending: bool = False  # the latest closed candle is still to be decided (retry soon)


@dataclass(slots=True)
class _Tick:
    """What one tick has learned so far."""

    reads: AccountReads
    now: int
    snapshot: AccountSnapshot  # the positions decisions are made on
    moved: bool = True  # the account can have changed since the last full sync
    mode: TradingMode = TradingMode.NORMAL
    bar_time: int = 0  # open time of the candle being decided
    decided: dict[str, int | None] = field(default_factory=dict)
    daily_start: DailyStart | None = None  # as stored when the tick began, then as rolled
    expected: dict[str, Decimal] = field(default_factory=dict)  # the journal's, at the start


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
        candle_sources: Sequence[Exchange] = (),
    ) -> None:
        """``candle_sources``: exchange clients of their own for fetching the due symbols'
        candles at once (one per concurrent fetch; none: one at a time on ``exchange``)."""
        self.config = config
        alerts = alerts if alerts is not None else NullAlertSink()
        self._exchange = exchange
        self._journal = journal
        self._positions = positions
        self._plan = PlanExecutor(positions=positions, journal=journal, alerts=alerts)
        self._markets: dict[str, Market] = dict(snapshot.markets)
        self._tf_ms = timeframe_ms(config.trading.timeframe)
        self._candles = CandleFeed(exchange, config.trading.timeframe)
        self._candle_sources = tuple(candle_sources) or (exchange,)
        self._pending: set[str] = set()
        self._decided_bar = -1  # the oldest "last decided candle" over all symbols
        self._last = LastSync(snapshot, snapshot.balance)

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
        symbols = self.config.trading.symbols
        now = self._exchange.server_now_ms()
        tick = _Tick(AccountReads(self._exchange, symbols, now_ms=now), now, self._last.snapshot)
        tick.decided = {s: self._journal.controls.decided_candle(s) for s in symbols}
        tick.daily_start = self._journal.controls.daily_start()
        last_closed = self._last_closed_open(now)
        due = [s for s in symbols if _or_minus_one(tick.decided[s]) < last_closed]
        reports = self._decide(due, tick) if due else {}
        balance = tick.reads.balance()
        synced = self._positions.sync(tick.reads.snapshot(tick.snapshot)).snapshot
        self._last = LastSync(synced, balance)
        telemetry.equity(None if balance is None else balance.total)
        self._roll_daily_start(tick, balance)
        return self._report(reports, tick, balance)

    def _last_closed_open(self, now: int) -> int:
        return (now // self._tf_ms - 1) * self._tf_ms  # open time of the last closed bar

    def _decide(self, due: list[str], tick: _Tick) -> dict[str, SymbolReport]:
        tick.bar_time = self._last_closed_open(tick.now)
        self._prepare_decisions(tick)
        tick.mode = self._journal.controls.mode().mode  # after the sync that may set it
        asks = [WindowAsk(s, required_history(self.config.strategy_for(s))) for s in due]
        windows = fetch_windows(self._candles, asks, sources=self._candle_sources,
                                last_open_ms=tick.bar_time, now_ms=tick.now)  # fmt: skip
        return {s: self._symbol_tick(s, windows[s], tick) for s in due}

    def _prepare_decisions(self, tick: _Tick) -> None:
        """Make the view the decisions use current at the cost of one request.

        The last full sync (the previous tick, seconds ago) stands while the exchange's
        positions still match it and the journal's expectation, and no order of ours is in
        flight; otherwise -- a stop triggered, a fill while we were away -- the full sync
        runs first, as at start.
        """
        positions = tick.reads.positions()
        in_flight = any(
            i.state is not IntentState.ACKED for i in self._journal.orders.non_final_intents()
        )
        seen = _amounts(positions)
        tick.expected = self._journal.account.expected_positions()
        # Both the last sync and the journal must agree with the exchange: a stop that fired
        # between that sync's two reads leaves the snapshot flat and the journal expecting
        # the position; deciding on that would enter on top of an unreconciled journal.
        if (
            not in_flight
            and seen == _amounts(self._last.snapshot.positions)
            and seen == tick.expected
        ):
            tick.snapshot = dataclasses.replace(
                self._last.snapshot, taken_at_ms=tick.now, positions=positions
            )
            tick.moved = False
            return
        tick.snapshot = self._positions.sync(tick.reads.snapshot(self._last.snapshot)).snapshot
        tick.expected = self._journal.account.expected_positions()  # the sync may adopt

    def _roll_daily_start(self, tick: _Tick, balance: Balance | None) -> DailyStart | None:
        stored = tick.daily_start
        rolled = guards.roll_daily_start(
            stored, now_ms=tick.now, equity=balance.total if balance else None
        )
        if rolled is not None and rolled != stored:
            self._journal.controls.set_daily_start(rolled, now_ms=tick.now)
            logger.info("daily.start day=%s equity=%s", rolled.day, rolled.equity)
            tick.daily_start = rolled
        return rolled

    # ----- one symbol -----

    def _symbol_tick(
        self, symbol: str, window: list[Candle] | TransientExchangeError, tick: _Tick
    ) -> SymbolReport:
        position = tick.snapshot.position(symbol)
        journal = JournalSymbol.read(self._journal, symbol, expected=tick.expected)
        held = status_text.describe(position, journal.stop_price)
        if isinstance(window, TransientExchangeError):
            logger.warning("candles.fetch_failed symbol=%s error=%s", symbol, window)
            return SymbolReport(symbol, f"{symbol} {held}, candles unavailable", pending=True)
        if not window or window[-1].open_time_ms != tick.bar_time:
            last = window[-1].open_time_ms if window else None
            logger.warning(
                "candles.stale symbol=%s expected=%s last=%s", symbol, tick.bar_time, last
            )
            return SymbolReport(symbol, f"{symbol} {held}, candle data stale", pending=True)
        view = journal.view(position, self._markets[symbol])
        decision = decide_symbol(window, self.config.strategy_for(symbol), view)
        logger.info(
            "decision symbol=%s candle=%s action=%s reason=%s",
            symbol,
            tick.bar_time,
            decision.action.value,
            decision.reason,
        )
        actions = plan(decision, view)
        self._execute(symbol, actions, tick, held=journal, price=to_decimal(window[-1].close))
        self._journal.controls.set_decided_candle(symbol, tick.bar_time, now_ms=tick.now)
        tick.decided[symbol] = tick.bar_time
        after = read_symbol(self._journal, symbol) if actions else journal  # what acting changed
        shown = after.position_after(tick.snapshot.position(symbol))
        return SymbolReport(symbol, f"{symbol} {status_text.describe(shown, after.stop_price)}")

    def _execute(
        self,
        symbol: str,
        actions: list[Planned],
        tick: _Tick,
        *,
        held: JournalSymbol,
        price: Decimal,
    ) -> None:
        try:
            for action in actions:
                if isinstance(action, MoveStop):
                    position = tick.snapshot.position(symbol)
                    amount = position.amount if position is not None else Decimal(0)
                    self._plan.move_stop(symbol, action, position=amount, old=held.stops,
                                         bar_time=tick.bar_time)  # fmt: skip
                elif isinstance(action, Close):
                    tick.moved = True  # a reversal's entry sizes on the balance after it
                    if not self._plan.close(symbol, action, bar_time=tick.bar_time):
                        return  # never open the other way on top of what is left
                    # The exchange confirmed flat: the entry's guards must not see the old
                    # position.
                    tick.snapshot = dataclasses.replace(
                        tick.snapshot,
                        positions=tuple(p for p in tick.snapshot.positions if p.symbol != symbol),
                    )
                else:
                    self._enter(symbol, action, tick, price=price)
        finally:
            if actions:
                tick.moved = True  # whatever this sent, later entries fetch the balance

    def _enter(self, symbol: str, due: EntryDue, tick: _Tick, *, price: Decimal) -> None:
        balance = tick.reads.entry_balance(
            self._last, moved=tick.moved, positions=tick.snapshot.positions
        )  # sizing and the daily loss guard need it
        outcome = plan_entry(due, self._entry_view(symbol, tick, balance, price=price))
        if isinstance(outcome, Skip):
            self._plan.skip(symbol, outcome.reason)
        elif isinstance(outcome, Block):
            self._plan.block(symbol, outcome, now=tick.now)
        else:
            self._plan.enter(symbol, outcome, bar_time=tick.bar_time)

    def _entry_view(
        self, symbol: str, tick: _Tick, balance: Balance | None, *, price: Decimal
    ) -> EntryView:
        risk = self.config.risk
        window_ms = int(max(risk.duplicate_window_s, 1) * 1000)
        context = guards.GuardContext(
            now_ms=tick.now,
            mode=tick.mode,
            balance=balance,
            positions={p.symbol: p for p in tick.snapshot.positions if not p.is_flat},
            expected=self._journal.account.expected_positions(),
            recent=self._journal.orders.intents_since(tick.now - window_ms, symbol=symbol),
            daily_start=self._roll_daily_start(tick, balance),
            leverage=self.config.trading.leverage,
        )
        inputs = GuardInputs(self._positions.executor.instance, context, risk)
        sizing = SizingRules(risk.risk_per_trade, self.config.trading.leverage, risk.max_notional)
        equity = balance.total if balance is not None else None
        market = self._markets[symbol]
        return EntryView(symbol, tick.bar_time, price, equity, market, sizing, inputs)

    # ----- the report -----

    def _report(
        self, reports: dict[str, SymbolReport], tick: _Tick, balance: Balance | None
    ) -> str:
        symbols = self.config.trading.symbols
        expected = self._journal.account.expected_positions()
        ordered = [reports.get(s) or self._describe_symbol(s, expected) for s in symbols]
        self._pending = {r.symbol for r in ordered if r.pending}
        self._decided_bar = min(_or_minus_one(tick.decided[s]) for s in symbols)
        self._journal.controls.set_last_tick(tick.now)
        head = status_text.head(self._journal, self._journal.controls.mode(), balance,
                                config_reduce_only=self.config.risk.reduce_only)  # fmt: skip
        return " | ".join([head, *(r.text for r in ordered)])

    def _describe_symbol(self, symbol: str, expected: dict[str, Decimal]) -> SymbolReport:
        stop = JournalSymbol.read(self._journal, symbol, expected=expected).stop_price
        held = status_text.describe(self._last.snapshot.position(symbol), stop)
        return SymbolReport(symbol, f"{symbol} {held}")


def _amounts(positions: Sequence[Position]) -> dict[str, Decimal]:
    return {p.symbol: p.amount for p in positions if not p.is_flat}


def _or_minus_one(candle_ms: int | None) -> int:
    return -1 if candle_ms is None else candle_ms
