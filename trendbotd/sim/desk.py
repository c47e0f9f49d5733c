"""Orders as a client places, queries and cancels them, checked like Binance checks them.

``OrderDesk`` works on the account in ``SimState`` and gets it current to the server's
clock through ``Matching.synced()`` before each look or change.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from decimal import Decimal

from trendbotd.sim import errors
from trendbotd.sim.ledger import TAKER_FEE, increase_qty, reduces
from trendbotd.sim.matching import Matching
from trendbotd.sim.orders import SimAlgoOrder, SimOrder
from trendbotd.sim.state import NewOrder, SimState

logger = logging.getLogger(__name__)


class OrderDesk:
    def __init__(self, state: SimState, matching: Matching) -> None:
        self.state = state
        self.matching = matching

    def synced(self) -> AbstractContextManager[int]:
        """``Matching.synced()``: the lock held, the account current; yields now."""
        return self.matching.synced()

    def place(self, req: NewOrder) -> SimOrder:
        """A MARKET or LIMIT order, checked like Binance checks it (raises SimError)."""
        with self.synced() as now:
            spec, book = req.spec, self.state.books[req.spec.id]
            if self.state.dual_side:
                raise errors.position_side_mismatch()
            if any(o.is_open and o.client_id == req.client_id for o in self.state.orders.values()):
                raise errors.duplicate_client_id()
            market = self.state.price(spec.id, now)
            ref = req.price if req.type == "LIMIT" else market
            if req.reduce_only and not reduces(book.amount, req.side):
                raise errors.reduce_only_rejected()
            if not req.reduce_only and req.qty * ref < spec.min_notional:
                raise errors.notional_too_small(f"{spec.min_notional.normalize():f}")
            increase = increase_qty(book.amount, req.side, req.qty)
            if (
                increase > 0
                and increase * ref / book.leverage + increase * ref * TAKER_FEE
                > self.state.available(now)
            ):
                raise errors.margin_insufficient()
            order = self.state.new_plain(req, now)
            marketable = req.type == "MARKET" or (
                (req.side == "BUY" and req.price >= market)
                or (req.side == "SELL" and req.price <= market)
            )
            if req.type == "LIMIT" and marketable and req.time_in_force == "GTX":
                self.state.finish(order, "EXPIRED", now)
            elif marketable:
                qty = min(req.qty, abs(book.amount)) if req.reduce_only else req.qty
                if req.fill_cap is not None and req.type == "MARKET":
                    qty = min(qty, req.fill_cap)  # the book ran out: the rest expires
                self.state.execute(order, qty, market, maker=False, at=now)
                if order.executed < order.qty:
                    self.state.finish(order, "EXPIRED", now)
            elif req.time_in_force in ("IOC", "FOK"):
                self.state.finish(order, "EXPIRED", now)
            logger.info(
                "sim.order.new symbol=%s cid=%s side=%s type=%s qty=%s status=%s",
                spec.id,
                order.client_id,
                order.side,
                order.type,
                order.qty,
                order.status,
            )
            return order

    def place_algo(self, req: NewOrder) -> SimAlgoOrder:
        with self.synced() as now:
            if self.state.dual_side:
                raise errors.position_side_mismatch()
            if any(
                a.is_open and a.client_algo_id == req.client_id for a in self.state.algos.values()
            ):
                raise errors.duplicate_client_id()
            if not req.client_id:
                req.client_id = f"sim-algo-{self.state.ids.client}"
                self.state.ids.client += 1
            spec = req.spec
            algo = SimAlgoOrder(
                spec=spec,
                algo_id=self.state.ids.algo,
                client_algo_id=req.client_id,
                side=req.side,
                order_type=req.type,
                qty=req.qty,
                trigger_price=req.stop_price,
                price=req.price,
                reduce_only=req.reduce_only,
                close_position=req.close_position,
                time_in_force=req.time_in_force,
                created_ms=now,
                update_ms=now,
            )
            if algo.triggered_by(float(self.state.price(spec.id, now))):
                raise errors.would_trigger_immediately()
            if req.close_position and any(
                a.is_open
                and a.close_position
                and a.spec.id == spec.id
                and a.side == req.side
                and a.order_type == req.type
                for a in self.state.algos.values()
            ):
                # Binance: one closePosition stop (and one take-profit) per direction
                raise errors.close_position_exists()
            if (
                not (req.reduce_only or req.close_position)
                and req.qty * req.stop_price < spec.min_notional
            ):
                raise errors.notional_too_small(f"{spec.min_notional.normalize():f}")
            self.state.ids.algo += 1
            self.state.add_algo(algo)
            logger.info(
                "sim.algo.new symbol=%s cid=%s side=%s type=%s trigger=%s",
                spec.id,
                algo.client_algo_id,
                algo.side,
                algo.order_type,
                algo.trigger_price,
            )
            return algo

    def find_order(
        self, sid: str, *, order_id: int | None, client_id: str | None
    ) -> SimOrder | None:
        with self.synced() as now:
            if order_id is not None:
                found = self.state.orders.get(order_id)
                ok = (
                    found is not None
                    and found.spec.id == sid
                    and (client_id is None or found.client_id == client_id)
                )
                return (
                    found if ok and found is not None and self.state.visible(found, now) else None
                )
            for o in reversed(self.state.orders.values()):
                if o.spec.id == sid and o.client_id == client_id and self.state.visible(o, now):
                    return o
            return None

    def cancel(self, order: SimOrder) -> SimOrder:
        with self.synced() as now:
            if not order.is_open:
                raise errors.unknown_order_on_cancel()
            self.state.finish(order, "CANCELED", now)
            logger.info("sim.order.canceled symbol=%s cid=%s", order.spec.id, order.client_id)
            return order

    def find_algo(
        self, sid: str | None, *, algo_id: int | None, client_id: str | None
    ) -> SimAlgoOrder | None:
        with self.synced():
            for a in reversed(self.state.algos.values()):
                if sid is not None and a.spec.id != sid:
                    continue
                if (algo_id is not None and a.algo_id == algo_id) or (
                    algo_id is None and a.client_algo_id == client_id
                ):
                    return a
            return None

    def cancel_algo(self, algo: SimAlgoOrder) -> SimAlgoOrder:
        with self.synced() as now:
            if not algo.is_open:
                raise errors.unknown_order_on_cancel()
            algo.status = "CANCELED"
            algo.update_ms = now
            self.state.touch()
            logger.info("sim.algo.canceled symbol=%s cid=%s", algo.spec.id, algo.client_algo_id)
            return algo

    def open_plain(self, sid: str | None) -> list[SimOrder]:
        with self.synced():
            return [o for o in self.state.orders.values() if o.is_open and sid in (None, o.spec.id)]

    def open_algos(self, sid: str | None) -> list[SimAlgoOrder]:
        with self.synced():
            return [a for a in self.state.algos.values() if a.is_open and sid in (None, a.spec.id)]

    def fill_manually(self, order: SimOrder, qty: Decimal, price: Decimal) -> None:
        """Test hook: fill part of an open order now at ``price`` (e.g. a partial fill)."""
        with self.synced() as now:
            if not order.is_open:
                raise errors.unknown_order_on_cancel()
            self.state.execute(
                order, min(qty, order.qty - order.executed), price, maker=True, at=now
            )
