"""Plain records the order-safety modules share: intents, their states, trading modes.

No I/O here; the journal stores these and the pure modules decide on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from trendbotd.core.domain import ZERO, OrderRequest, OrderType, Side

# Binance -2021 "Order would immediately trigger": the mark price has already passed the
# stop's trigger. The executor starts such a rejection's last_error with this text.
WOULD_TRIGGER = "would trigger immediately (-2021)"


class IntentState(StrEnum):
    PENDING = "PENDING"  # journalled; the request has not left (crash here: never sent)
    SENT = "SENT"  # committed right before the request leaves; outcome not yet known
    ACKED = "ACKED"  # the exchange holds it open (resting limit, live stop)
    FILLED = "FILLED"
    CANCELED = "CANCELED"  # canceled or expired, possibly after a partial fill
    REJECTED = "REJECTED"  # refused by the exchange; never executed
    UNKNOWN = "UNKNOWN"  # sent, outcome unknown and not yet resolved by a query
    ABANDONED = "ABANDONED"  # confirmed absent on the exchange and given up

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset(
    {IntentState.FILLED, IntentState.CANCELED, IntentState.REJECTED, IntentState.ABANDONED}
)
NON_FINAL_STATES: tuple[IntentState, ...] = tuple(s for s in IntentState if not s.is_final)


class Purpose(StrEnum):
    ENTRY = "entry"
    STOP = "stop"
    EXIT = "exit"
    FLATTEN = "flatten"

    @property
    def reduces(self) -> bool:
        """Stops, exits and flattening only ever shrink a position."""
        return self is not Purpose.ENTRY


class TradingMode(StrEnum):
    NORMAL = "normal"
    REDUCE_ONLY = "reduce_only"  # manage exits only; set by mismatches, guards or the operator
    # the operator's `trendbotd halt` / `flatten`: no new entries, exits and stops still
    # managed (a halt must never leave a position without its protection); only resume lifts it
    HALTED = "halted"


@dataclass(frozen=True, slots=True)
class IntentSpec:
    """What the engine wants sent. The client order id is derived from these fields."""

    symbol: str
    side: Side
    type: OrderType
    amount: Decimal
    purpose: Purpose
    candle_time_ms: int
    seq: int = 0
    price: Decimal | None = None
    stop_price: Decimal | None = None  # trigger price of a STOP_MARKET
    reduce_only: bool = False
    protective_stop: Decimal | None = None  # entries: the stop to place once filled
    parent_client_order_id: str | None = None  # stops: the entry they protect


@dataclass(frozen=True, slots=True)
class Intent:
    """One journalled order intent and everything learned about it since."""

    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    amount: Decimal
    purpose: Purpose
    candle_time_ms: int
    seq: int
    state: IntentState
    created_ms: int
    updated_ms: int
    price: Decimal | None = None
    stop_price: Decimal | None = None
    reduce_only: bool = False
    protective_stop: Decimal | None = None
    parent_client_order_id: str | None = None
    exchange_order_id: str | None = None
    filled: Decimal = ZERO
    average_price: Decimal | None = None
    attempts: int = 0  # how many times a request for it left (survives restarts)
    sent_ms: int | None = None  # when the last request left
    last_error: str | None = None

    @property
    def conditional(self) -> bool:
        """Stops live in Binance's algo-order API."""
        return self.type is OrderType.STOP_MARKET

    @property
    def refused_would_trigger(self) -> bool:
        """A stop refused because the market is already past its trigger (-2021)."""
        return self.state is IntentState.REJECTED and (self.last_error or "").startswith(
            WOULD_TRIGGER
        )

    @property
    def signed_filled(self) -> Decimal:
        return self.filled if self.side is Side.BUY else -self.filled

    def to_request(self) -> OrderRequest:
        return OrderRequest(
            symbol=self.symbol,
            side=self.side,
            type=self.type,
            amount=self.amount,
            client_order_id=self.client_order_id,
            price=self.price,
            stop_price=self.stop_price,
            reduce_only=self.reduce_only,
        )

    def describe(self) -> str:
        return (
            f"{self.client_order_id} {self.purpose} {self.side} {self.type} {self.amount} "
            f"{self.symbol} state={self.state}"
        )


@dataclass(frozen=True, slots=True)
class IntentUpdate:
    """A state change learned from the exchange, applied atomically by the journal."""

    state: IntentState
    exchange_order_id: str | None = None
    filled: Decimal | None = None  # cumulative; the journal books the increase as a fill
    average_price: Decimal | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class ModeState:
    mode: TradingMode
    reason: str
    since_ms: int


@dataclass(frozen=True, slots=True)
class DailyStart:
    """Equity at the start of the UTC day (or at the operator's resume)."""

    day: int  # days since the epoch, UTC
    equity: Decimal


@dataclass(frozen=True, slots=True)
class PositionView:
    """A position as seen at a sync, with the stop protecting it (if any)."""

    symbol: str
    amount: Decimal
    entry_price: Decimal
    stop_price: Decimal | None
    stop_client_order_id: str | None
    seen_at_ms: int
