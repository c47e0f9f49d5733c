"""Matching of the simulated exchange: placing orders and walking the price path.

``sync()`` walks every symbol's path from the last synced instant to the server's now and
fills limit orders or triggers algo orders where the path reaches them, in path order. A
triggered stop becomes a MARKET order filled at the first path price past its trigger
(the trigger price itself on a continuous path), recorded with ``origType`` STOP_MARKET and
linked from the algo order's ``actualOrderId``.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from trendbotd.sim import errors
from trendbotd.sim.ledger import TAKER_FEE, increase_qty, reduces
from trendbotd.sim.orders import SimAlgoOrder, SimOrder
from trendbotd.sim.state import NewOrder, SimState

logger = logging.getLogger(__name__)


class MatchingState(SimState):
    def set_price(self, symbol: str, price: Decimal | None) -> None:
        """Pin the symbol's price (``None`` returns it to the generated path). Orders the
        jump crosses fill or trigger, as if the market had moved there."""
        with self.synced() as now:
            sid = self.spec(symbol).id
            before = self._raw_price(sid, now)
            if price is None:
                self._pins.pop(sid, None)
            else:
                self._pins[sid] = Decimal(price)
            self.touch()
            self._cross(sid, before, self._raw_price(sid, now), now)

    # ----- matching -----

    def sync(self, now: int | None = None) -> None:
        with self.lock:
            t = self.now_ms() if now is None else now
            for sid, tape in self.tapes.items():
                last = self._synced_ms[sid]
                if t <= last:
                    continue
                self._synced_ms[sid] = t
                if sid in self._pins:
                    continue
                working = self._working(sid)
                for piece in tape.pieces(last, t) if working else ():
                    self._cross(sid, piece.p0, piece.p1, piece.t0, piece.t1, working=working)
                    working = [w for w in working if w.is_open]
                    if not working:
                        break

    def _working(self, sid: str) -> list[SimOrder | SimAlgoOrder]:
        limits: list[SimOrder | SimAlgoOrder] = [
            o for o in self.orders.values() if o.is_open and o.spec.id == sid and o.type == "LIMIT"
        ]
        return limits + [a for a in self.algos.values() if a.is_open and a.spec.id == sid]

    def _cross(
        self,
        sid: str,
        p0: float,
        p1: float,
        t0: int,
        t1: int | None = None,
        *,
        working: list[SimOrder | SimAlgoOrder] | None = None,
    ) -> None:
        """Fill limit orders and trigger algo orders that the move p0 -> p1 reaches, in the
        order the path reaches them."""
        end = t0 if t1 is None else t1
        lo, hi = min(p0, p1), max(p0, p1)
        events: list[tuple[int, int, SimOrder | SimAlgoOrder, float]] = []

        def hit_time(level: float) -> int:
            if p1 == p0 or end == t0:
                return t0
            frac = min(1.0, max(0.0, (level - p0) / (p1 - p0)))
            return t0 + int((end - t0) * frac)

        for item in self._working(sid) if working is None else working:
            if not item.is_open:
                continue
            if isinstance(item, SimOrder):
                limit = float(item.price)
                buy = item.side == "BUY"
                if (buy and lo <= limit) or (not buy and hi >= limit):
                    already = (buy and p0 <= limit) or (not buy and p0 >= limit)
                    events.append((t0 if already else hit_time(limit), item.order_id, item, limit))
            elif item.triggered_by(p0):
                events.append((t0, item.algo_id, item, p0))
            elif item.triggered_by(lo) or item.triggered_by(hi):
                level = float(item.trigger_price)
                events.append((hit_time(level), item.algo_id, item, level))
        for at, _, item, level in sorted(events, key=lambda e: (e[0], e[1])):
            if not item.is_open:
                continue
            if isinstance(item, SimOrder):
                self._fill_limit(item, at)
            else:
                self._trigger(item, item.spec.round_price(level), at)

    def _fill_limit(self, order: SimOrder, at: int) -> None:
        book = self.books[order.spec.id]
        qty = order.qty - order.executed
        if order.reduce_only:
            if not reduces(book.amount, order.side):
                self._finish(order, "EXPIRED", at)
                return
            qty = min(qty, abs(book.amount))
        self._execute(order, qty, order.price, maker=True, at=at)
        if order.executed < order.qty and order.reduce_only:
            self._finish(order, "EXPIRED", at)

    def _trigger(self, algo: SimAlgoOrder, price: Decimal, at: int) -> None:
        book = self.books[algo.spec.id]
        qty = algo.qty
        algo.trigger_ms = at
        algo.update_ms = at
        self.touch()
        limited = algo.reduce_only or algo.close_position
        if limited:
            qty = abs(book.amount) if algo.close_position else min(qty, abs(book.amount))
        order = self._new_plain(
            NewOrder(
                spec=algo.spec,
                side=algo.side,
                type="MARKET",
                qty=qty if qty > 0 else algo.qty,
                client_id=algo.client_algo_id,
                reduce_only=algo.reduce_only,
                close_position=algo.close_position,
            ),
            at,
        )
        order.orig_type = algo.order_type
        order.stop_price = algo.trigger_price
        algo.actual_order_id = order.order_id
        if limited and (qty <= 0 or not reduces(book.amount, algo.side)):
            self._finish(order, "EXPIRED", at)
            algo.status = "EXPIRED"
            self.touch()
            logger.info("sim.algo.expired symbol=%s cid=%s", algo.spec.id, algo.client_algo_id)
            return
        self._execute(order, qty, price, maker=False, at=at)
        algo.actual_price = order.avg_price
        algo.status = "FINISHED"
        self.touch()
        logger.info(
            "sim.algo.triggered symbol=%s cid=%s price=%s", algo.spec.id, algo.client_algo_id, price
        )

    def place(self, req: NewOrder) -> SimOrder:
        """A MARKET or LIMIT order, checked like Binance checks it (raises SimError)."""
        with self.synced() as now:
            spec, book = req.spec, self.books[req.spec.id]
            if self.dual_side:
                raise errors.position_side_mismatch()
            if any(o.is_open and o.client_id == req.client_id for o in self.orders.values()):
                raise errors.duplicate_client_id()
            market = self.price(spec.id, now)
            ref = req.price if req.type == "LIMIT" else market
            if req.reduce_only and not reduces(book.amount, req.side):
                raise errors.reduce_only_rejected()
            if not req.reduce_only and req.qty * ref < spec.min_notional:
                raise errors.notional_too_small(f"{spec.min_notional.normalize():f}")
            increase = increase_qty(book.amount, req.side, req.qty)
            if (
                increase > 0
                and increase * ref / book.leverage + increase * ref * TAKER_FEE
                > self.available(now)
            ):
                raise errors.margin_insufficient()
            order = self._new_plain(req, now)
            marketable = req.type == "MARKET" or (
                (req.side == "BUY" and req.price >= market)
                or (req.side == "SELL" and req.price <= market)
            )
            if req.type == "LIMIT" and marketable and req.time_in_force == "GTX":
                self._finish(order, "EXPIRED", now)
            elif marketable:
                qty = min(req.qty, abs(book.amount)) if req.reduce_only else req.qty
                if req.fill_cap is not None and req.type == "MARKET":
                    qty = min(qty, req.fill_cap)  # the book ran out: the rest expires
                self._execute(order, qty, market, maker=False, at=now)
                if order.executed < order.qty:
                    self._finish(order, "EXPIRED", now)
            elif req.time_in_force in ("IOC", "FOK"):
                self._finish(order, "EXPIRED", now)
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
            if self.dual_side:
                raise errors.position_side_mismatch()
            if any(a.is_open and a.client_algo_id == req.client_id for a in self.algos.values()):
                raise errors.duplicate_client_id()
            if not req.client_id:
                req.client_id = f"sim-algo-{self._next_cid}"
                self._next_cid += 1
            spec = req.spec
            algo = SimAlgoOrder(
                spec=spec,
                algo_id=self._next_algo_id,
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
            if algo.triggered_by(float(self.price(spec.id, now))):
                raise errors.would_trigger_immediately()
            if req.close_position and any(
                a.is_open
                and a.close_position
                and a.spec.id == spec.id
                and a.side == req.side
                and a.order_type == req.type
                for a in self.algos.values()
            ):
                # Binance: one closePosition stop (and one take-profit) per direction
                raise errors.close_position_exists()
            if (
                not (req.reduce_only or req.close_position)
                and req.qty * req.stop_price < spec.min_notional
            ):
                raise errors.notional_too_small(f"{spec.min_notional.normalize():f}")
            self._next_algo_id += 1
            self._prune_algos()
            self.algos[algo.algo_id] = algo
            self.touch()
            logger.info(
                "sim.algo.new symbol=%s cid=%s side=%s type=%s trigger=%s",
                spec.id,
                algo.client_algo_id,
                algo.side,
                algo.order_type,
                algo.trigger_price,
            )
            return algo
