"""Walk closed candles through the live decision code and simulate the fills.

Per bar ``i``, in the order the live daemon meets them against the simulated exchange:

1. at the open: a market order decided at the previous close fills at the open plus
   slippage (buys higher, sells lower); an entry's stop is live from then on;
2. inside the bar: a stop fills at its price when the bar's range reaches it, or at the
   open when the bar opens beyond it (gap-through);
3. at the close: ``decide_bar`` -- the function the live loop calls through ``decide`` --
   sees the bar and the position, and the live loop's planner (``core/planner.py``) turns
   the decision into actions: a trailing move (rounded to the price grid) takes effect
   from the next bar; a close or an entry is queued for the next open. An entry is sized
   there and then by ``plan_entry``, as the live loop sizes it, with the equity marked at
   the close (cash plus the open position's profit) and the close as the entry price.
   The backtest has no pre-trade guards. A decision at the last bar is dropped.

Bars before ``first_decision_ms`` are history only (indicator warm-up), like the candles
a live daemon fetches at its first tick. Every fill pays ``fee_rate`` of its notional
(market and stop orders are both taker). Money is Decimal; the per-bar equity curve for
the metrics is float.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
from numpy.typing import NDArray

from trendbotd.config import StrategyParams
from trendbotd.core.domain import ZERO, Market, Position, Side
from trendbotd.core.planner import (
    Close,
    Enter,
    EntryDue,
    EntryView,
    LiveStop,
    MoveStop,
    Planned,
    SizingRules,
    SymbolView,
    plan,
    plan_entry,
)
from trendbotd.core.sizing import to_decimal
from trendbotd.core.strategy.candles import CandleArrays
from trendbotd.core.strategy.signals import (
    FLAT,
    Action,
    Direction,
    PositionView,
    compute_signals,
    decide_bar,
)

DEFAULT_FEE_RATE = Decimal("0.0005")  # Binance USD-M taker
_BPS = Decimal(10000)


def synthetic_market(symbol: str, reference_price: float) -> Market:
    """Exchange rules for a backtest: about 6 significant digits of price and an amount
    step worth 1-10 quote units at ``reference_price``; minimum notional 5 (Binance's)."""
    if not (math.isfinite(reference_price) and reference_price > 0):
        raise ValueError(f"reference price must be positive, not {reference_price}")
    magnitude = math.floor(math.log10(reference_price))
    amount_step = Decimal(1).scaleb(-magnitude)
    return Market(
        symbol=symbol,
        exchange_symbol=symbol.partition(":")[0].replace("/", ""),
        amount_step=amount_step,
        price_step=Decimal(1).scaleb(magnitude - 5),
        min_amount=amount_step,
        min_notional=Decimal(5),
    )


@dataclass(frozen=True, slots=True)
class BacktestSettings:
    market: Market
    start_equity: Decimal = Decimal(10000)
    risk_per_trade: float = 0.01
    max_leverage: int = 3  # the leverage positions have on the exchange
    max_notional: Decimal = Decimal(50000)
    fee_rate: Decimal = DEFAULT_FEE_RATE
    slippage_bps: Decimal = ZERO  # on market fills only; stops fill at their price
    first_decision_ms: int | None = None  # bars opening earlier only warm the indicators up


@dataclass(frozen=True, slots=True)
class Trade:
    direction: Direction
    amount: Decimal
    entry_ms: int
    entry_price: Decimal
    initial_stop: Decimal
    exit_ms: int
    exit_price: Decimal
    exit_reason: str  # "stop", "stop gap", "exit signal", "reverse", "end of data", ...
    fees: Decimal
    pnl: Decimal  # net of both fees

    @property
    def gross(self) -> Decimal:
        return self.pnl + self.fees


@dataclass(frozen=True, slots=True)
class SkippedEntry:
    time_ms: int
    direction: Direction
    reason: str


@dataclass(slots=True)
class BacktestResult:
    settings: BacktestSettings
    trades: list[Trade]
    skipped: list[SkippedEntry]
    equity: NDArray[np.float64]  # equity at each bar's close (open positions marked)
    in_position: NDArray[np.bool_]  # a position was open at the bar's close
    final_equity: Decimal
    decisions: int = 0  # decide_bar calls (one per bar)

    @property
    def fees(self) -> Decimal:
        return sum((t.fees for t in self.trades), ZERO)


@dataclass(frozen=True, slots=True)
class _Order:
    """A market decision waiting for the next open."""

    close: Close | None
    entry: Enter | None  # None: no entry (an exit, or an entry the sizing skipped)


@dataclass(slots=True)
class _Book:
    """Cash and the one open position of the simulated account."""

    settings: BacktestSettings
    cash: Decimal
    trades: list[Trade] = field(default_factory=list)
    skipped: list[SkippedEntry] = field(default_factory=list)
    direction: Direction = Direction.FLAT
    amount: Decimal = ZERO
    entry_price: Decimal = ZERO
    entry_ms: int = 0
    entry_fee: Decimal = ZERO
    initial_stop: Decimal = ZERO
    stop: Decimal = ZERO
    # float copies for the per-bar mark-to-market and stop checks
    cash_f: float = 0.0
    amount_f: float = 0.0
    entry_f: float = 0.0
    stop_f: float = 0.0

    def view(self) -> PositionView:
        if self.direction is Direction.FLAT:
            return FLAT
        return PositionView(self.direction, self.entry_f, self.stop_f)

    def mark(self, price: float) -> float:
        if self.direction is Direction.FLAT:
            return self.cash_f
        return self.cash_f + self.direction * self.amount_f * (price - self.entry_f)

    def _fee(self, amount: Decimal, price: Decimal) -> Decimal:
        return amount * price * self.settings.fee_rate

    def _market_price(self, open_price: float, *, buy: bool) -> Decimal:
        slip = self.settings.slippage_bps / _BPS
        return to_decimal(open_price) * (1 + slip if buy else 1 - slip)

    def symbol_view(self) -> SymbolView:
        """The planner's view of the book's position and its stop."""
        if self.direction is Direction.FLAT:
            return SymbolView(None, None, (), self.settings.market)
        position = Position(
            self.settings.market.symbol, self.direction * self.amount, self.entry_price
        )
        return SymbolView(
            position, self.stop, (LiveStop(self.stop, self.amount),), self.settings.market
        )

    def size(self, due: EntryDue, *, at_ms: int, close: float) -> Enter | None:
        """Size an entry at the decision close, as the live loop does (None: skipped)."""
        price = to_decimal(close)
        equity = self.cash
        if self.direction is not Direction.FLAT:
            # a reversal: the live loop sizes on the balance after its close order filled
            equity += self.direction * self.amount * (price - self.entry_price)
            equity -= self._fee(self.amount, price)
        s = self.settings
        view = EntryView(
            symbol=s.market.symbol,
            candle_time_ms=at_ms,
            price=price,
            equity=equity,
            market=s.market,
            sizing=SizingRules(s.risk_per_trade, s.max_leverage, s.max_notional),
        )
        outcome = plan_entry(due, view)
        if not isinstance(outcome, Enter):
            self.skipped.append(SkippedEntry(at_ms, due.direction, outcome.reason))
            return None
        return outcome

    def enter(self, entry: Enter, *, at_ms: int, open_price: float) -> None:
        long = entry.side is Side.BUY
        fill = self._market_price(open_price, buy=long)
        self.direction = Direction.LONG if long else Direction.SHORT
        self.amount, self.entry_price = entry.amount, fill
        self.entry_ms, self.initial_stop, self.stop = at_ms, entry.stop_price, entry.stop_price
        self.entry_fee = self._fee(entry.amount, fill)
        self.cash -= self.entry_fee
        self.cash_f, self.amount_f = float(self.cash), float(entry.amount)
        self.entry_f, self.stop_f = float(fill), float(entry.stop_price)

    def close(self, price: Decimal, *, at_ms: int, reason: str) -> None:
        exit_fee = self._fee(self.amount, price)
        gross = self.direction * self.amount * (price - self.entry_price)
        self.cash += gross - exit_fee
        fees = self.entry_fee + exit_fee
        self.trades.append(
            Trade(
                direction=self.direction,
                amount=self.amount,
                entry_ms=self.entry_ms,
                entry_price=self.entry_price,
                initial_stop=self.initial_stop,
                exit_ms=at_ms,
                exit_price=price,
                exit_reason=reason,
                fees=fees,
                pnl=gross - fees,
            )
        )
        self.direction, self.amount, self.cash_f = Direction.FLAT, ZERO, float(self.cash)

    def close_at_market(self, open_price: float, *, at_ms: int, reason: str) -> None:
        price = self._market_price(open_price, buy=self.direction is Direction.SHORT)
        self.close(price, at_ms=at_ms, reason=reason)

    def check_stop(self, open_price: float, high: float, low: float, *, at_ms: int) -> bool:
        """Fill the stop if the bar reaches it; True when it did."""
        long = self.direction is Direction.LONG
        if (low > self.stop_f) if long else (high < self.stop_f):
            return False
        if (open_price <= self.stop_f) if long else (open_price >= self.stop_f):
            self.close(to_decimal(open_price), at_ms=at_ms, reason="stop gap")
        else:
            self.close(self.stop, at_ms=at_ms, reason="stop")
        return True

    def move_stop(self, move: MoveStop) -> None:
        stop = move.new_price
        if (stop > self.stop) if move.long else (stop < self.stop):  # only ever tighten
            self.stop, self.stop_f = stop, float(stop)


def _execute(book: _Book, order: _Order, *, at_ms: int, open_price: float) -> None:
    if order.close is not None and book.direction is not Direction.FLAT:
        reason = "reverse" if order.close.reverse else order.close.reason
        book.close_at_market(open_price, at_ms=at_ms, reason=reason)
    if order.entry is not None:
        book.enter(order.entry, at_ms=at_ms, open_price=open_price)


def _plan_order(book: _Book, actions: list[Planned], *, at_ms: int, close: float) -> _Order:
    """The close and the sized entry to carry out at the next open."""
    closing = next((a for a in actions if isinstance(a, Close)), None)
    due = next((a for a in actions if isinstance(a, EntryDue)), None)
    entry = book.size(due, at_ms=at_ms, close=close) if due is not None else None
    return _Order(closing, entry)


def run_backtest(
    candles: CandleArrays, params: StrategyParams, settings: BacktestSettings
) -> BacktestResult:
    """Simulate ``params`` over ``candles`` (closed, ascending) with ``settings``."""
    n = len(candles)
    signals = compute_signals(candles, params)
    opens, highs, lows = candles.open.tolist(), candles.high.tolist(), candles.low.tolist()
    times = candles.open_time_ms.tolist()
    decisions = 0
    book = _Book(settings=settings, cash=settings.start_equity, cash_f=float(settings.start_equity))
    equity: list[float] = []  # Python lists: appending beats numpy item assignment
    held: list[bool] = []
    pending: _Order | None = None
    view = FLAT
    first = settings.first_decision_ms
    closes = candles.close.tolist()
    for i, bar in enumerate(signals.rows()):
        if pending is not None:
            _execute(book, pending, at_ms=times[i], open_price=opens[i])
            pending = None
            view = book.view()
        if book.direction is not Direction.FLAT and book.check_stop(
            opens[i], highs[i], lows[i], at_ms=times[i]
        ):
            view = FLAT
        if first is None or times[i] >= first:
            decision = decide_bar(bar, params, view)
            decisions += 1
            actions = [] if decision.action is Action.HOLD else plan(decision, book.symbol_view())
            for move in actions:
                if isinstance(move, MoveStop):  # takes effect from the next bar
                    book.move_stop(move)
                    view = book.view()
            if i + 1 < n and any(not isinstance(a, MoveStop) for a in actions):
                pending = _plan_order(book, actions, at_ms=times[i], close=closes[i])
        equity.append(book.mark(bar.close))
        held.append(book.direction is not Direction.FLAT)
    if n and book.direction is not Direction.FLAT:
        # Close what is still open at the last close so the result counts its exit fee.
        book.close(to_decimal(float(candles.close[-1])), at_ms=times[-1], reason="end of data")
        equity[-1] = book.cash_f
    return BacktestResult(
        settings=settings,
        trades=book.trades,
        skipped=book.skipped,
        equity=np.array(equity, dtype=np.float64),
        in_position=np.array(held, dtype=np.bool_),
        final_equity=book.cash,
        decisions=decisions,
    )
