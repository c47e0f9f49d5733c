"""Plain data the whole daemon speaks: Decimal money, integer UTC milliseconds.

No I/O here. Adapters build these from exchange payloads; pure code decides on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

ZERO = Decimal(0)


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP_MARKET = "stop_market"  # conditional (algo) order that lives on the exchange


class OrderStatus(StrEnum):
    OPEN = "open"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def is_final(self) -> bool:
        return self is not OrderStatus.OPEN


class AccountMode(StrEnum):
    ONE_WAY = "one_way"
    HEDGE = "hedge"


@dataclass(frozen=True, slots=True)
class Candle:
    """One closed OHLCV bar. ``open_time_ms`` is the bar's start, UTC milliseconds."""

    open_time_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True, slots=True)
class Market:
    """What the exchange allows for one symbol (from exchangeInfo)."""

    symbol: str  # unified ccxt symbol, e.g. "BTC/USDT:USDT"
    exchange_symbol: str  # e.g. "BTCUSDT"
    amount_step: Decimal
    price_step: Decimal
    min_amount: Decimal
    min_notional: Decimal


@dataclass(frozen=True, slots=True)
class Balance:
    """Quote-currency balance of the futures wallet."""

    currency: str
    total: Decimal  # wallet balance plus unrealised PnL (equity)
    free: Decimal  # available for new margin


@dataclass(frozen=True, slots=True)
class Position:
    """A one-way-mode position. ``amount`` is signed: > 0 long, < 0 short."""

    symbol: str
    amount: Decimal
    entry_price: Decimal
    unrealized_pnl: Decimal = ZERO
    leverage: int | None = None

    @property
    def is_flat(self) -> bool:
        return self.amount == 0


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """An order as the daemon intends to send it. ``client_order_id`` is deterministic."""

    symbol: str
    side: Side
    type: OrderType
    amount: Decimal
    client_order_id: str
    price: Decimal | None = None  # limit price
    stop_price: Decimal | None = None  # trigger price of a STOP_MARKET
    reduce_only: bool = False


@dataclass(frozen=True, slots=True)
class Order:
    """An order as the exchange reports it."""

    symbol: str
    side: Side
    type: OrderType
    amount: Decimal
    filled: Decimal
    status: OrderStatus
    client_order_id: str
    exchange_order_id: str
    price: Decimal | None = None
    average_price: Decimal | None = None
    stop_price: Decimal | None = None
    reduce_only: bool = False
    conditional: bool = False  # a Binance algo (trigger) order
    updated_ms: int = 0


@dataclass(frozen=True, slots=True)
class ClockOffset:
    """Exchange time minus local time, from the midpoints of the fastest round trips."""

    offset_ms: int
    uncertainty_ms: int  # half the round trip of the chosen sample
    measured_at_ms: int  # local monotonic-free wall time of the measurement
    samples: int
    # of the chosen sample, for the operator (None where not measured); not part of the value
    round_trip_ms: int | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """Everything startup sync learned, all fetched successfully; never partial."""

    taken_at_ms: int
    clock: ClockOffset
    mode: AccountMode
    balance: Balance
    positions: tuple[Position, ...]
    open_orders: tuple[Order, ...]  # includes conditional (algo) orders
    markets: dict[str, Market] = field(default_factory=dict)

    def position(self, symbol: str) -> Position | None:
        return next((p for p in self.positions if p.symbol == symbol), None)
