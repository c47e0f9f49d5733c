"""Thread-safe helpers on the simulated account for tests and the /sim/ control API."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from trendbotd.core.domain import Balance, Order, OrderStatus, OrderType, Position, Side
from trendbotd.sim import errors, views
from trendbotd.sim.desk import OrderDesk
from trendbotd.sim.ledger import ZERO
from trendbotd.sim.matching import Matching
from trendbotd.sim.orders import SimAlgoOrder, SimOrder
from trendbotd.sim.state import NewOrder, SimState

logger = logging.getLogger(__name__)

_STATUS = {
    "NEW": OrderStatus.OPEN,
    "PARTIALLY_FILLED": OrderStatus.OPEN,
    "FILLED": OrderStatus.FILLED,
    "FINISHED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "EXPIRED": OrderStatus.EXPIRED,
    "REJECTED": OrderStatus.REJECTED,
}


def to_domain(order: SimOrder | SimAlgoOrder) -> Order:
    if isinstance(order, SimOrder):
        return Order(
            symbol=order.spec.unified,
            side=Side(order.side.lower()),
            type=OrderType.LIMIT if order.type == "LIMIT" else OrderType.MARKET,
            amount=order.qty,
            filled=order.executed,
            status=_STATUS[order.status],
            client_order_id=order.client_id,
            exchange_order_id=str(order.order_id),
            price=order.price or None,
            average_price=order.avg_price or None,
            reduce_only=order.reduce_only,
            updated_ms=order.update_ms,
        )
    return Order(
        symbol=order.spec.unified,
        side=Side(order.side.lower()),
        type=OrderType.STOP_MARKET,
        amount=order.qty,
        filled=ZERO,
        status=_STATUS[order.status],
        client_order_id=order.client_algo_id,
        exchange_order_id=str(order.algo_id),
        stop_price=order.trigger_price,
        reduce_only=order.reduce_only or order.close_position,
        conditional=True,
        updated_ms=order.update_ms,
    )


class SimAccount:
    """Helpers that set up or inspect the account directly, as domain objects: what
    tests and the control API use (``SimExchange.account``)."""

    def __init__(self, state: SimState, matching: Matching, desk: OrderDesk) -> None:
        self.state = state
        self.matching = matching
        self.desk = desk

    def set_price(self, symbol: str, price: Decimal | None) -> None:
        """Pin the symbol's price (``None``: back to the path); see ``Matching.set_price``."""
        self.matching.set_price(symbol, price)

    def set_position(self, symbol: str, amount: Decimal, entry_price: Decimal) -> None:
        with self.matching.synced() as now:
            book = self.state.books[self.state.spec(symbol).id]
            book.amount = Decimal(amount)
            book.entry_price = Decimal(entry_price) if amount else ZERO
            book.update_ms = now
            self.state.touch()
            logger.info(
                "sim.set_position symbol=%s amount=%s entry=%s", symbol, amount, entry_price
            )

    def set_balance(self, balance: Decimal) -> None:
        with self.matching.synced() as now:
            self.state.wallet = Decimal(balance)
            self.state.wallet_update_ms = now
            self.state.touch()

    def positions(self) -> list[Position]:
        """Open (non-flat) positions."""
        with self.matching.synced() as now:
            return [
                Position(
                    symbol=self.state.specs[sid].unified,
                    amount=book.amount,
                    entry_price=book.entry_price,
                    unrealized_pnl=self.state.unrealized(sid, now),
                    leverage=book.leverage,
                )
                for sid, book in self.state.books.items()
                if book.amount != 0
            ]

    def position(self, symbol: str) -> Position:
        sid = self.state.spec(symbol).id
        found = [p for p in self.positions() if p.symbol == self.state.specs[sid].unified]
        return found[0] if found else Position(self.state.specs[sid].unified, ZERO, ZERO)

    def balance(self) -> Balance:
        with self.matching.synced() as now:
            upnl = sum((self.state.unrealized(s, now) for s in self.state.specs), ZERO)
            return Balance("USDT", self.state.wallet + upnl, self.state.available(now))

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Plain and algo open orders, as domain objects."""
        sid = self.state.spec(symbol).id if symbol else None
        items: list[SimOrder | SimAlgoOrder] = [
            *self.desk.open_plain(sid),
            *self.desk.open_algos(sid),
        ]
        return [to_domain(o) for o in items]

    def order(self, symbol: str, client_order_id: str, *, conditional: bool = False) -> Order:
        """The latest order with this client id (raises SimError -2013 if there is none)."""
        sid = self.state.spec(symbol).id
        found: SimOrder | SimAlgoOrder | None
        if conditional:
            found = self.desk.find_algo(sid, algo_id=None, client_id=client_order_id)
        else:
            found = self.desk.find_order(sid, order_id=None, client_id=client_order_id)
        if found is None:
            raise errors.order_not_found()
        return to_domain(found)

    def place_order(
        self,
        symbol: str,
        side: str,
        type: str,  # the exchange's word for it
        amount: Decimal,
        price: Decimal | None = None,
        *,
        client_order_id: str = "",
        reduce_only: bool = False,
        stop_price: Decimal | None = None,
        close_position: bool = False,
        time_in_force: str = "GTC",
    ) -> Order:
        """Place an order as if a client had sent it (same checks, same SimError codes).
        ``type``: market, limit, stop_market or take_profit_market."""
        spec = self.state.spec(symbol)
        kind = type.upper()
        req = NewOrder(
            spec=spec,
            side=side.upper(),
            type=kind,
            qty=Decimal(amount),
            price=Decimal(price) if price is not None else ZERO,
            stop_price=Decimal(stop_price) if stop_price is not None else ZERO,
            client_id=client_order_id,
            reduce_only=reduce_only,
            close_position=close_position,
            time_in_force=time_in_force,
        )
        if kind in ("MARKET", "LIMIT"):
            return to_domain(self.desk.place(req))
        return to_domain(self.desk.place_algo(req))

    def fill_order(self, symbol: str, client_order_id: str, qty: Decimal, price: Decimal) -> Order:
        """Fill part or all of an open plain order now (e.g. to produce PARTIALLY_FILLED)."""
        found = self.desk.find_order(
            self.state.spec(symbol).id, order_id=None, client_id=client_order_id
        )
        if found is None:
            raise errors.order_not_found()
        self.desk.fill_manually(found, Decimal(qty), Decimal(price))
        return to_domain(found)

    def snapshot(self) -> dict[str, Any]:
        """Everything a test might want to look at, JSON-ready."""
        with self.matching.synced() as now:
            return {
                "server_time_ms": now,
                "dual_side": self.state.dual_side,
                "multi_assets": self.state.multi_assets,
                "realized_pnl": views.money(self.state.realized_pnl),
                "account": views.account(self.state, now, version=3),
                "prices": {
                    sid: s.fmt_price(self.state.price(sid, now))
                    for sid, s in self.state.specs.items()
                },
                "positions": views.position_risk(self.state, None, now, version=2),
                "open_orders": [o.wire() for o in self.desk.open_plain(None)],
                "open_algo_orders": [a.wire() for a in self.desk.open_algos(None)],
                "orders": [o.wire() for o in self.state.orders.values()],
                "algo_orders": [a.wire() for a in self.state.algos.values()],
                "protection": self.state.protection.report(
                    now, unified={sid: s.unified for sid, s in self.state.specs.items()}
                ),
            }
