"""The exchange reads of one tick, each made at most once, and the one way the account is read.

A tick reads the balance once (an entry and the closing sync share it), the positions once
before any order goes out, and -- for the sync that closes every tick -- the open orders
and then the positions again (what the orders did). ``LastSync`` is what the previous
sync left: while the account cannot have moved since, its balance stands for an entry.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from trendbotd.core.domain import AccountSnapshot, Balance, Order, Position
from trendbotd.core.ports import Exchange
from trendbotd.errors import TransientExchangeError

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Reader(Protocol):
    """How a request is made: once, or with bounded retries (OrderExecutor.read_with_retry)."""

    def __call__(self, what: str, read: Callable[[], T]) -> T: ...


def _once(what: str, read: Callable[[], T]) -> T:
    return read()


def orders_then_positions(
    exchange: Exchange, symbols: Sequence[str], *, read: Reader = _once
) -> tuple[tuple[Order, ...], tuple[Position, ...]]:
    """Open orders (plain and conditional), then the non-flat positions. Orders first: a
    stop that fires between the two reads then shows as a stop on a flat symbol
    (harmless), never as a position without its stop. ``read``: how each request is made
    (e.g. with bounded retries); by default once."""
    wanted = list(symbols)
    orders = read("open_orders", lambda: exchange.fetch_open_orders(wanted))
    positions = read("positions", lambda: exchange.fetch_positions(wanted))
    return tuple(orders), tuple(p for p in positions if not p.is_flat)


@dataclass(frozen=True, slots=True)
class LastSync:
    """The snapshot the last full sync left and the balance it read (None: that read
    failed)."""

    snapshot: AccountSnapshot
    balance: Balance | None


class AccountReads:
    """One tick's reads of the account. ``balance()`` asks the exchange at most once."""

    def __init__(self, exchange: Exchange, symbols: Sequence[str], *, now_ms: int) -> None:
        self._exchange = exchange
        self._symbols = list(symbols)
        self.now_ms = now_ms
        self._balance: Balance | None = None
        self._balance_read = False

    def balance(self) -> Balance | None:
        """The balance, fetched at most once per tick; None when the fetch failed."""
        if not self._balance_read:
            self._balance_read = True
            try:
                self._balance = self._exchange.fetch_balance()
            except TransientExchangeError as e:
                # Never read a failed fetch as zero: no new entries, exits still run.
                logger.warning("balance.fetch_failed error=%s", e)
        return self._balance

    def entry_balance(
        self, last: LastSync, *, moved: bool, positions: Sequence[Position]
    ) -> Balance | None:
        """The balance to size an entry with. Flat on every symbol, with nothing filled or
        sent since the last full sync (``moved`` False), the balance that sync read is
        still exact (no open profit moves it): the entry need not wait for another
        request. Otherwise fetched."""
        flat = all(p.is_flat for p in positions)
        if flat and not moved and last.balance is not None:
            return last.balance
        return self.balance()

    def positions(self) -> tuple[Position, ...]:
        """The positions alone: the one request before a decision's orders go out."""
        return tuple(self._exchange.fetch_positions(self._symbols))

    def snapshot(self, base: AccountSnapshot) -> AccountSnapshot:
        """``base`` with the balance, open orders and positions read now."""
        balance = self.balance()
        orders, positions = orders_then_positions(self._exchange, self._symbols)
        return dataclasses.replace(
            base,
            taken_at_ms=self.now_ms,
            balance=balance if balance is not None else base.balance,
            positions=positions,
            open_orders=orders,
        )
