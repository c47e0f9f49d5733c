"""The simulated account: wallet, one-way positions, orders, algo orders, fills, margin.

``SimState`` holds the data and the bookkeeping every change goes through (a fill, a
finished order, a new order id); it knows nothing of matching. Everything runs under
its one re-entrant lock. Matching is lazy: each request (and a light background thread)
advances it to the server's clock first (``Matching.synced()``, see ``matching.py``), so
what a client sees is always current.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TypeVar

from trendbotd.sim import errors
from trendbotd.sim.ledger import MAKER_FEE, TAKER_FEE, ZERO, apply_fill, increase_qty, reduces
from trendbotd.sim.locking import StateLock
from trendbotd.sim.market import Tape
from trendbotd.sim.orders import SimAlgoOrder, SimOrder
from trendbotd.sim.protection import ProtectionMeter
from trendbotd.sim.specs import SymbolSpec

logger = logging.getLogger(__name__)

RETENTION_MS = 3 * 86_400_000  # canceled/expired orders without fills vanish after 3 days
DEFAULT_LEVERAGE = 20
# Bounded history: a paper daemon runs for months and its state file is rewritten on every
# change. Open orders always stay; beyond a cap the oldest closed entries go, a batch at a
# time (Binance's allOrders/userTrades answer at most 1000 rows anyway).
MAX_KEPT_ORDERS = 1000
MAX_KEPT_ALGOS = 1000
MAX_KEPT_FILLS = 1000
PRUNE_BATCH = 100


@dataclass(slots=True)
class PositionBook:
    amount: Decimal = ZERO  # signed: > 0 long, < 0 short
    entry_price: Decimal = ZERO
    leverage: int = DEFAULT_LEVERAGE
    update_ms: int = 0


@dataclass(slots=True)
class Fill:
    order_id: int
    symbol: str
    side: str
    qty: Decimal
    price: Decimal
    fee: Decimal
    realized_pnl: Decimal
    maker: bool
    at_ms: int
    trade_id: int = 0


@dataclass(slots=True)
class IdCounters:
    """The next id of each kind (persisted, so ids continue across restarts)."""

    order: int = 4_000_000_001
    algo: int = 1_000_001
    client: int = 1
    trade: int = 1


@dataclass(slots=True)
class NewOrder:
    """A validated order request (quantities already checked against the symbol's rules)."""

    spec: SymbolSpec
    side: str
    type: str
    qty: Decimal
    price: Decimal = ZERO
    stop_price: Decimal = ZERO
    client_id: str = ""
    reduce_only: bool = False
    close_position: bool = False
    time_in_force: str = "GTC"
    fills: list[Fill] = field(default_factory=list)
    fill_cap: Decimal | None = None  # MARKET: liquidity for only this much; the rest EXPIRES


Kept = TypeVar("Kept", SimOrder, SimAlgoOrder)


def _prune(kept: dict[int, Kept], cap: int) -> None:
    """Drop the oldest closed entries beyond the cap (insertion order is id order)."""
    if len(kept) <= cap:
        return
    excess = len(kept) - cap + PRUNE_BATCH
    for key in [key for key, item in kept.items() if not item.is_open][:excess]:
        del kept[key]


class SimState:
    def __init__(
        self,
        *,
        specs: dict[str, SymbolSpec],
        tapes: dict[str, Tape],
        start_balance: Decimal,
        now_fn: Callable[[], int],
    ) -> None:
        self.lock = StateLock()
        self.revision = 0  # bumped by every change of the account (see touch())
        self.specs = specs  # by exchange id
        self.tapes = tapes
        self.now_ms = now_fn
        self.wallet = start_balance
        self.wallet_update_ms = now_fn()
        self.realized_pnl = ZERO  # total realised over the account's life, before fees
        self.books = {sid: PositionBook() for sid in specs}
        self.orders: dict[int, SimOrder] = {}
        self.algos: dict[int, SimAlgoOrder] = {}
        self.fills: list[Fill] = []
        self.dual_side = False
        self.multi_assets = False
        # Order queries over the wire do not see an order younger than this (ms of server
        # time), though it has executed: Binance's query side can lag its matching engine.
        self.visibility_delay_ms = 0
        self.visibility_conditional = False  # the delay hides algo orders too
        self.pins: dict[str, Decimal] = {}  # set_price: a fixed price instead of the tape
        self.synced_ms = dict.fromkeys(specs, now_fn())  # matching has run up to here
        self.ids = IdCounters()
        self.protection = ProtectionMeter()
        self._observed_revision = -1

    def touch(self) -> None:
        """Record that the account changed (call under the lock); the state file follows."""
        self.revision += 1
        self.observe_protection()

    def observe_if_changed(self, now: int) -> None:
        """Observe protection once more if the account changed since last time."""
        if self.revision != self._observed_revision:
            self.observe_protection(now)

    def observe_protection(self, now: int | None = None) -> None:
        """Let the meter see every position and its stops (call under the lock)."""
        self._observed_revision = self.revision
        at = self.now_ms() if now is None else now
        for sid, book in self.books.items():
            if book.amount != 0 or sid in self.protection.symbols:
                algos = [a for a in self.algos.values() if a.spec.id == sid] if book.amount else []
                self.protection.observe(sid, book.amount, algos, at)

    # ----- prices -----

    def spec(self, symbol: str) -> SymbolSpec:
        """Rules for an exchange id (``BTCUSDT``) or unified symbol (``BTC/USDT:USDT``)."""
        found = self.specs.get(symbol) or next(
            (s for s in self.specs.values() if s.unified == symbol), None
        )
        if found is None:
            raise errors.invalid_symbol()
        return found

    def raw_price(self, sid: str, now: int) -> float:
        pin = self.pins.get(sid)
        return float(pin) if pin is not None else self.tapes[sid].price_at(now)

    def price(self, symbol: str, now: int | None = None) -> Decimal:
        """The current price (tick-rounded) of an exchange id or unified symbol."""
        with self.lock:
            spec = self.spec(symbol)
            t = self.now_ms() if now is None else now
            return spec.round_price(self.raw_price(spec.id, t))

    def pinned(self, sid: str) -> Decimal | None:
        return self.pins.get(sid)

    def execute(
        self, order: SimOrder, qty: Decimal, price: Decimal, *, maker: bool, at: int
    ) -> None:
        if qty <= 0:
            return
        book = self.books[order.spec.id]
        effect = apply_fill(
            amount=book.amount,
            entry_price=book.entry_price,
            side=order.side,
            qty=qty,
            price=price,
            fee_rate=MAKER_FEE if maker else TAKER_FEE,
        )
        book.amount, book.entry_price, book.update_ms = effect.amount, effect.entry_price, at
        self.wallet += effect.realized_pnl - effect.fee
        self.wallet_update_ms = at
        self.realized_pnl += effect.realized_pnl
        order.record_fill(qty, price, at)
        order.realized_pnl += effect.realized_pnl
        order.commission += effect.fee
        self.fills.append(
            Fill(
                order.order_id,
                order.spec.id,
                order.side,
                qty,
                price,
                effect.fee,
                effect.realized_pnl,
                maker,
                at,
                self.ids.trade,
            )
        )
        self.ids.trade += 1
        if len(self.fills) > MAX_KEPT_FILLS:
            del self.fills[: len(self.fills) - MAX_KEPT_FILLS + PRUNE_BATCH]
        self.touch()
        logger.debug(
            "sim.fill symbol=%s id=%s qty=%s price=%s", order.spec.id, order.order_id, qty, price
        )
        self.expire_stale_reduce_only(order.spec.id, at)

    def expire_stale_reduce_only(self, sid: str, at: int) -> None:
        amount = self.books[sid].amount
        for o in self.orders.values():
            if o.spec.id == sid and o.is_open and o.reduce_only and not reduces(amount, o.side):
                self.finish(o, "EXPIRED", at)

    def finish(self, order: SimOrder, status: str, at: int) -> None:
        order.status = status
        order.update_ms = at
        self.touch()

    # ----- margin -----

    def unrealized(self, sid: str, now: int) -> Decimal:
        book = self.books[sid]
        return (self.price(sid, now) - book.entry_price) * book.amount if book.amount else ZERO

    def position_margin(self, sid: str, now: int) -> Decimal:
        book = self.books[sid]
        return abs(book.amount) * self.price(sid, now) / book.leverage

    def open_order_margin(self, sid: str) -> Decimal:
        book = self.books[sid]
        total = ZERO
        for o in self.orders.values():
            if o.spec.id == sid and o.is_open and o.type == "LIMIT" and not o.reduce_only:
                left = increase_qty(book.amount, o.side, o.qty - o.executed)
                total += left * o.price / book.leverage
        return total

    def available(self, now: int) -> Decimal:
        upnl = sum((self.unrealized(s, now) for s in self.specs), ZERO)
        used = sum(
            (self.position_margin(s, now) + self.open_order_margin(s) for s in self.specs), ZERO
        )
        return self.wallet + upnl - used

    # ----- orders -----

    def new_plain(self, req: NewOrder, now: int) -> SimOrder:
        if not req.client_id:
            req.client_id = f"sim-{self.ids.client}"
            self.ids.client += 1
        order = SimOrder(
            spec=req.spec,
            order_id=self.ids.order,
            client_id=req.client_id,
            side=req.side,
            type=req.type,
            qty=req.qty,
            price=req.price if req.type == "LIMIT" else ZERO,
            reduce_only=req.reduce_only,
            time_in_force=req.time_in_force,
            created_ms=now,
            update_ms=now,
            close_position=req.close_position,
        )
        self.ids.order += 1
        _prune(self.orders, MAX_KEPT_ORDERS)
        self.orders[order.order_id] = order
        self.touch()
        return order

    def add_algo(self, algo: SimAlgoOrder) -> None:
        _prune(self.algos, MAX_KEPT_ALGOS)
        self.algos[algo.algo_id] = algo
        self.touch()

    def visible(self, order: SimOrder, now: int) -> bool:
        return order.is_open or order.executed > 0 or now - order.update_ms <= RETENTION_MS

    def set_visibility_delay(self, delay_ms: int, *, conditional: bool) -> None:
        with self.lock:
            self.visibility_delay_ms = max(0, int(delay_ms))
            self.visibility_conditional = conditional
        logger.info("sim.visibility_delay ms=%s conditional=%s", delay_ms, conditional)

    def not_yet_visible(self, created_ms: int, now: int, *, conditional: bool) -> bool:
        """An order the wire's queries must not show yet (``set_visibility_delay``)."""
        if conditional and not self.visibility_conditional:
            return False
        return now - created_ms < self.visibility_delay_ms

    # ----- settings -----

    def set_leverage(self, symbol: str, leverage: int) -> None:
        with self.lock:
            self.books[self.spec(symbol).id].leverage = leverage
            self.touch()

    def set_hedge_mode(self, enabled: bool) -> None:
        with self.lock:
            self.dual_side = enabled
            self.touch()

    def set_multi_assets(self, enabled: bool) -> None:
        with self.lock:
            self.multi_assets = enabled
            self.touch()
