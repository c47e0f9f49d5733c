"""An in-memory exchange implementing ``trendbotd.core.ports.Exchange`` for executor tests,
and the order tests' shared harness (``ORDERS_POLICY``, ``Bot``, ``entry_spec``,
``stop_spec``) with its fixtures ``clock``, ``fake``, ``bot`` and ``executor`` (made visible
by conftest.py).

Not a mock: it keeps positions, plain and conditional orders, fills market orders at the
current price, enforces reduce-only and Binance's duplicate-id rule (only among OPEN
orders), and records every call. Faults are scripted per method: ``before`` raises
without executing, ``after`` executes and then raises (a reply lost on the way back).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pytest

from trendbotd.core.clock import ManualClock
from trendbotd.core.domain import (
    ZERO,
    AccountMode,
    AccountSnapshot,
    Balance,
    Candle,
    ClockOffset,
    Market,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    Side,
)
from trendbotd.core.records import IntentSpec, Purpose
from trendbotd.errors import (
    DuplicateClientOrderIdError,
    InvalidOrderError,
    OrderNotFoundError,
    ReduceOnlyRejectedError,
)
from trendbotd.journal.store import Journal, open_journal
from trendbotd.trading.crashpoints import CrashHook
from trendbotd.trading.executor import ExecutorPolicy, OrderExecutor
from trendbotd.trading.positions import PositionManager

SYMBOL = "BTC/USDT:USDT"


@dataclass
class FakeFault:
    method: str
    error: Exception
    when: str = "before"  # "before": not executed; "after": executed, reply lost
    times: int = 1
    match: Callable[[OrderRequest], bool] | None = None


@dataclass
class FakeExchange:
    price: Decimal = Decimal(50000)
    ack_only: bool = False  # market orders answer NEW/0 filled (Binance's ACK response)
    fill_ratio: Decimal = Decimal(1)  # share of an entry market order that fills (rest expires)
    positions: dict[str, Decimal] = field(default_factory=dict)
    entry_prices: dict[str, Decimal] = field(default_factory=dict)
    orders: list[Order] = field(default_factory=list)  # every accepted order, in order
    calls: list[tuple[str, str]] = field(default_factory=list)  # (method, client id or "")
    faults: list[FakeFault] = field(default_factory=list)
    clock_measures: int = 0
    hidden: dict[str, int] = field(default_factory=dict)  # cid -> queries that do not see it
    balance: Balance = field(
        default_factory=lambda: Balance("USDT", Decimal(10000), Decimal(10000))
    )

    # ----- test controls -----

    def fault(self, method: str, error: Exception, **kw: object) -> None:
        self.faults.append(FakeFault(method, error, **kw))  # type: ignore[arg-type]

    def accepted(self, cid: str) -> int:
        """How many orders the exchange accepted under this client id."""
        return sum(1 for o in self.orders if o.client_order_id == cid)

    def accepted_plain(self) -> list[Order]:
        return [o for o in self.orders if not o.conditional]

    def open_stops(self, symbol: str = SYMBOL) -> list[Order]:
        return [
            o
            for o in self.orders
            if o.conditional and o.symbol == symbol and o.status is OrderStatus.OPEN
        ]

    def expire_stops(self, symbol: str = SYMBOL) -> None:
        """The market crossed every open stop while nothing was open: a reduce-only stop
        with nothing to reduce expires (Binance), leaving no order behind."""
        for stop in self.open_stops(symbol):
            self._replace(dataclasses.replace(stop, status=OrderStatus.EXPIRED))

    def trigger_stops(self, symbol: str = SYMBOL) -> None:
        """The market crossed every open stop: each closes (reduce-only) what is open."""
        for stop in self.open_stops(symbol):
            qty = min(stop.amount, abs(self.positions.get(symbol, ZERO)))
            self._move(symbol, stop.side, qty)
            self._replace(dataclasses.replace(stop, status=OrderStatus.FILLED))

    def _take_fault(self, method: str, request: OrderRequest | None) -> FakeFault | None:
        for f in self.faults:
            if f.method != method:
                continue
            if f.match is not None and (request is None or not f.match(request)):
                continue
            f.times -= 1
            if f.times <= 0:
                self.faults.remove(f)
            return f
        return None

    # ----- the Exchange protocol -----

    def load_markets(self, symbols: Sequence[str]) -> dict[str, Market]:
        return {
            s: Market(
                s,
                s.split("/")[0] + "USDT",
                Decimal("0.001"),
                Decimal("0.1"),
                Decimal("0.001"),
                Decimal(5),
            )
            for s in symbols
        }

    def measure_clock(self) -> ClockOffset:
        self.calls.append(("measure_clock", ""))
        self.clock_measures += 1
        return ClockOffset(0, 1, 0, 5)

    def fetch_account_mode(self) -> AccountMode:
        return AccountMode.ONE_WAY

    def fetch_balance(self) -> Balance:
        return self.balance

    def fetch_positions(self, symbols: Sequence[str]) -> list[Position]:
        self.calls.append(("fetch_positions", ""))
        fault = self._take_fault("fetch_positions", None)
        if fault is not None:
            raise fault.error
        return [
            Position(s, a, self.entry_prices.get(s, self.price))
            for s, a in sorted(self.positions.items())
            if a != 0 and s in symbols
        ]

    def fetch_open_orders(self, symbols: Sequence[str]) -> list[Order]:
        self.calls.append(("fetch_open_orders", ""))
        return [o for o in self.orders if o.status is OrderStatus.OPEN and o.symbol in symbols]

    def fetch_candles(
        self, symbol: str, *, timeframe: str, since_ms: int | None, limit: int
    ) -> list[Candle]:
        return []

    def create_order(self, request: OrderRequest) -> Order:
        self.calls.append(("create_order", request.client_order_id))
        fault = self._take_fault("create_order", request)
        if fault is not None and fault.when == "before":
            raise fault.error
        order = self._execute(request)
        if fault is not None:
            raise fault.error
        if self.ack_only and not order.conditional:
            return dataclasses.replace(
                order, status=OrderStatus.OPEN, filled=ZERO, average_price=None
            )
        return order

    def fetch_order_by_client_id(
        self, symbol: str, client_order_id: str, *, conditional: bool
    ) -> Order | None:
        self.calls.append(("fetch_order", client_order_id))
        fault = self._take_fault("fetch_order", None)
        if fault is not None:
            raise fault.error
        if self.hidden.get(client_order_id, 0) > 0:
            self.hidden[client_order_id] -= 1  # executed, not yet visible to queries
            return None
        for o in reversed(self.orders):
            if o.client_order_id == client_order_id and o.conditional == conditional:
                return o
        return None

    def cancel_order_by_client_id(
        self, symbol: str, client_order_id: str, *, conditional: bool
    ) -> Order:
        self.calls.append(("cancel", client_order_id))
        for o in reversed(self.orders):
            if o.client_order_id == client_order_id and o.conditional == conditional:
                if o.status is not OrderStatus.OPEN:
                    raise OrderNotFoundError("Unknown order sent. (-2011)")
                canceled = dataclasses.replace(o, status=OrderStatus.CANCELED)
                self._replace(canceled)
                return canceled
        raise OrderNotFoundError("Unknown order sent. (-2011)")

    def set_leverage(self, symbol: str, leverage: int) -> None:
        return None

    def close(self) -> None:
        return None

    # ----- matching -----

    def _execute(self, r: OrderRequest) -> Order:
        if any(
            o.client_order_id == r.client_order_id and o.status is OrderStatus.OPEN
            for o in self.orders
        ):
            raise DuplicateClientOrderIdError("ClientOrderId is duplicated. (-4116)", code=-4116)
        held = self.positions.get(r.symbol, ZERO)
        if r.type is OrderType.STOP_MARKET:
            assert r.stop_price is not None
            immediate = (r.side is Side.SELL and self.price <= r.stop_price) or (
                r.side is Side.BUY and self.price >= r.stop_price
            )
            if immediate:
                raise InvalidOrderError("Order would immediately trigger. (-2021)", code=-2021)
            order = self._order(r, OrderStatus.OPEN, ZERO, conditional=True)
            self.orders.append(order)
            return order
        if r.reduce_only and not _reduces(held, r.side):
            raise ReduceOnlyRejectedError("ReduceOnly Order is rejected. (-2022)", code=-2022)
        qty = min(r.amount, abs(held)) if r.reduce_only else r.amount * self.fill_ratio
        self._move(r.symbol, r.side, qty)
        status = OrderStatus.FILLED if qty == r.amount else OrderStatus.EXPIRED
        order = self._order(r, status, qty, conditional=False)
        self.orders.append(order)
        return order

    def _order(
        self, r: OrderRequest, status: OrderStatus, filled: Decimal, *, conditional: bool
    ) -> Order:
        return Order(
            symbol=r.symbol,
            side=r.side,
            type=r.type,
            amount=r.amount,
            filled=filled,
            status=status,
            client_order_id=r.client_order_id,
            exchange_order_id=str(len(self.orders) + 1),
            price=r.price,
            average_price=self.price if filled else None,
            stop_price=r.stop_price,
            reduce_only=r.reduce_only,
            conditional=conditional,
        )

    def _move(self, symbol: str, side: Side, qty: Decimal) -> None:
        signed = qty if side is Side.BUY else -qty
        self.positions[symbol] = self.positions.get(symbol, ZERO) + signed

    def _replace(self, order: Order) -> None:
        for n, o in enumerate(self.orders):
            if (o.exchange_order_id, o.conditional) == (order.exchange_order_id, order.conditional):
                self.orders[n] = order


def _reduces(held: Decimal, side: Side) -> bool:
    return (held > 0 and side is Side.SELL) or (held < 0 and side is Side.BUY)


# The order tests' harness: times, the executor policy, builders and a bot per "process".
T0 = 1_700_000_000_000
CANDLE = T0 - 3_600_000
ORDERS_POLICY = ExecutorPolicy(
    query_attempts=4,
    query_backoff_s=0.5,
    max_backoff_s=4.0,
    absent_settle_ms=6000,
    max_sends=3,
    entry_resend_window_ms=60_000,
    fill_polls=3,
    max_rate_limit_wait_s=30.0,
)
# Shorter waits still, for the engine's tests: a fake answers at once.
POLICY = dataclasses.replace(
    ORDERS_POLICY,
    query_attempts=2,
    query_backoff_s=0.1,
    max_backoff_s=1.0,
    absent_settle_ms=1000,
    fill_polls=2,
    max_rate_limit_wait_s=5.0,
)


def creates(fake: FakeExchange) -> list[str]:
    """The client ids of every create request, in order."""
    return [cid for method, cid in fake.calls if method == "create_order"]


def entry_spec(**kw: object) -> IntentSpec:
    """A BTC market entry of 0.010 on ``CANDLE`` with its stop at 49000; ``kw`` overrides."""
    values: dict[str, object] = {
        "symbol": SYMBOL,
        "side": Side.BUY,
        "type": OrderType.MARKET,
        "amount": Decimal("0.010"),
        "purpose": Purpose.ENTRY,
        "candle_time_ms": CANDLE,
        "protective_stop": Decimal(49000),
    }
    values.update(kw)
    return IntentSpec(**values)  # type: ignore[arg-type]


def stop_spec(*, side: Side = Side.SELL, stop_price: Decimal = Decimal(49000)) -> IntentSpec:
    """A reduce-only STOP_MARKET for 0.010 on ``CANDLE``."""
    return IntentSpec(
        symbol=SYMBOL,
        side=side,
        type=OrderType.STOP_MARKET,
        amount=Decimal("0.010"),
        purpose=Purpose.STOP,
        candle_time_ms=CANDLE,
        stop_price=stop_price,
        reduce_only=True,
    )


def snapshot_of(fake: FakeExchange, clock: ManualClock) -> AccountSnapshot:
    """What a startup sync would read from ``fake`` now."""
    return AccountSnapshot(
        taken_at_ms=clock.now_ms(),
        clock=ClockOffset(0, 1, 0, 5),
        mode=AccountMode.ONE_WAY,
        balance=Balance("USDT", Decimal(10000), Decimal(9000)),
        positions=tuple(fake.fetch_positions([SYMBOL])),
        open_orders=tuple(fake.fetch_open_orders([SYMBOL])),
    )


class Bot:
    """One 'process': a journal handle, an executor and a position manager."""

    def __init__(
        self,
        path: Path,
        fake: FakeExchange,
        clock: ManualClock,
        crash: CrashHook | None = None,
        *,
        waiting: Callable[[float], None] | None = None,
        fence: Callable[[], bool] | None = None,
        policy: ExecutorPolicy = ORDERS_POLICY,
    ) -> None:
        self.journal: Journal = open_journal(path)
        self.executor = OrderExecutor(
            exchange=fake,
            journal=self.journal,
            clock=clock,
            instance="bot",
            policy=policy,
            crash=crash,
            waiting=waiting,
            fence=fence,
        )
        self.pm = PositionManager(executor=self.executor, symbols=[SYMBOL], close_rounds=4)
        self.fake = fake
        self.clock = clock

    def snapshot(self) -> AccountSnapshot:
        return snapshot_of(self.fake, self.clock)


def running_bot(path: Path, fake: FakeExchange, clock: ManualClock) -> Iterator[Bot]:
    """For a fixture: ``yield from running_bot(...)`` closes the journal afterwards."""
    bot = Bot(path, fake, clock)
    yield bot
    bot.journal.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def fake() -> FakeExchange:
    return FakeExchange()


@pytest.fixture
def bot(tmp_path: Path, fake: FakeExchange, clock: ManualClock) -> Iterator[Bot]:
    yield from running_bot(tmp_path / "bot.db", fake, clock)


@pytest.fixture
def executor(bot: Bot) -> OrderExecutor:
    return bot.executor
