"""Matching of the simulated exchange: walking the price path (placing orders: ``desk.py``).

``sync()`` walks every symbol's path from the last synced instant to the server's now and
fills limit orders or triggers algo orders where the path reaches them, in path order. A
triggered stop becomes a MARKET order filled at the first path price past its trigger
(the trigger price itself on a continuous path), recorded with ``origType`` STOP_MARKET and
linked from the algo order's ``actualOrderId``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

from trendbotd.sim.ledger import reduces
from trendbotd.sim.orders import SimAlgoOrder, SimOrder
from trendbotd.sim.state import NewOrder, SimState

logger = logging.getLogger(__name__)


class Matching:
    """Walks the price path over the account in ``state`` and fills or triggers what it
    reaches; ``synced()`` is the way every reader and writer gets the account current."""

    def __init__(self, state: SimState) -> None:
        self.state = state

    @contextmanager
    def synced(self) -> Iterator[int]:
        """Hold the lock with matching advanced to now; yields now."""
        state = self.state
        with state.lock:
            now = state.now_ms()
            self.sync(now)
            yield now
            state.observe_if_changed(now)

    def set_price(self, symbol: str, price: Decimal | None) -> None:
        """Pin the symbol's price (``None`` returns it to the generated path). Orders the
        jump crosses fill or trigger, as if the market had moved there."""
        state = self.state
        with self.synced() as now:
            sid = state.spec(symbol).id
            before = state.raw_price(sid, now)
            if price is None:
                state.pins.pop(sid, None)
            else:
                state.pins[sid] = Decimal(price)
            state.touch()
            self._cross(sid, before, state.raw_price(sid, now), now)

    # ----- matching -----

    def sync(self, now: int | None = None) -> None:
        state = self.state
        with state.lock:
            t = state.now_ms() if now is None else now
            for sid, tape in state.tapes.items():
                last = state.synced_ms[sid]
                if t <= last:
                    continue
                state.synced_ms[sid] = t
                if sid in state.pins:
                    continue
                working = self._working(sid)
                for piece in tape.pieces(last, t) if working else ():
                    self._cross(sid, piece.p0, piece.p1, piece.t0, piece.t1, working=working)
                    working = [w for w in working if w.is_open]
                    if not working:
                        break

    def _working(self, sid: str) -> list[SimOrder | SimAlgoOrder]:
        state = self.state
        limits: list[SimOrder | SimAlgoOrder] = [
            o for o in state.orders.values() if o.is_open and o.spec.id == sid and o.type == "LIMIT"
        ]
        return limits + [a for a in state.algos.values() if a.is_open and a.spec.id == sid]

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
        state = self.state
        book = state.books[order.spec.id]
        qty = order.qty - order.executed
        if order.reduce_only:
            if not reduces(book.amount, order.side):
                state.finish(order, "EXPIRED", at)
                return
            qty = min(qty, abs(book.amount))
        state.execute(order, qty, order.price, maker=True, at=at)
        if order.executed < order.qty and order.reduce_only:
            state.finish(order, "EXPIRED", at)

    def _trigger(self, algo: SimAlgoOrder, price: Decimal, at: int) -> None:
        state = self.state
        book = state.books[algo.spec.id]
        qty = algo.qty
        algo.trigger_ms = at
        algo.update_ms = at
        state.touch()
        limited = algo.reduce_only or algo.close_position
        if limited:
            qty = abs(book.amount) if algo.close_position else min(qty, abs(book.amount))
        order = state.new_plain(
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
            state.finish(order, "EXPIRED", at)
            algo.status = "EXPIRED"
            state.touch()
            logger.info("sim.algo.expired symbol=%s cid=%s", algo.spec.id, algo.client_algo_id)
            return
        state.execute(order, qty, price, maker=False, at=at)
        algo.actual_price = order.avg_price
        algo.status = "FINISHED"
        state.touch()
        logger.info(
            "sim.algo.triggered symbol=%s cid=%s price=%s", algo.spec.id, algo.client_algo_id, price
        )
