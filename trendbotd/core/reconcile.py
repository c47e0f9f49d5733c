"""Reconciliation: the journal's beliefs against the exchange's truth. Pure.

Startup (and any later sync) runs in two steps:

1. every non-final intent is resolved by client order id: ``resolution_queries`` lists
   what to fetch, the caller fetches, ``update_from_order`` turns each answer into a
   journal update (a fill while we were down is adopted here);
2. ``reconcile`` compares expected positions with the snapshot and decides: adopt quietly
   (a position gone flat while its stop is gone too: the stop triggered while we were
   down), or a mismatch that puts the bot in reduce-only mode with a reason a human can
   act on (a position opened by hand, a size mismatch, an open order nobody journalled).

No corrective orders are invented here. The only actions proposed are protective: a
missing stop for a position the bot owns, and cancelling our own stops left behind on
a flat symbol.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from trendbotd.core.client_ids import is_ours
from trendbotd.core.domain import ZERO, AccountSnapshot, Order, OrderStatus, Side
from trendbotd.core.records import Intent, IntentState, IntentUpdate, PositionView, Purpose


@dataclass(frozen=True, slots=True)
class ResolveQuery:
    client_order_id: str
    symbol: str
    conditional: bool


@dataclass(frozen=True, slots=True)
class Adoption:
    symbol: str
    expected: Decimal
    actual: Decimal
    reason: str


@dataclass(frozen=True, slots=True)
class Mismatch:
    symbol: str
    reason: str
    # flat while our stop is still listed: also what a stop that fired between the two
    # reads of one snapshot (orders, then positions) looks like, so it is read again first
    flat_under_listed_stop: bool = False


@dataclass(frozen=True, slots=True)
class MissingStop:
    """An open position without (enough) reduce-only stop on the exchange."""

    symbol: str
    position: Decimal  # signed
    uncovered: Decimal  # amount no stop covers
    stop_price: Decimal | None  # the newest stop price the journal knows for the symbol
    owned: bool  # the position is the bot's (no mismatch on the symbol)

    @property
    def side(self) -> Side:
        return Side.SELL if self.position > 0 else Side.BUY


@dataclass(frozen=True, slots=True)
class Reconciliation:
    adoptions: tuple[Adoption, ...]
    mismatches: tuple[Mismatch, ...]
    missing_stops: tuple[MissingStop, ...]
    orphan_stops: tuple[Order, ...]  # our stops still open on a flat symbol: cancel them

    @property
    def consistent(self) -> bool:
        return not self.mismatches

    @property
    def worth_reading_again(self) -> bool:
        """A mismatch a fresh read may explain away (see ``Mismatch``)."""
        return any(m.flat_under_listed_stop for m in self.mismatches)

    def reduce_only_reason(self) -> str | None:
        """One line for the log, STATUS= and the journal; None when consistent."""
        if not self.mismatches:
            return None
        return "; ".join(f"{m.symbol}: {m.reason}" for m in self.mismatches)


# ----- step 1: resolve non-final intents -----


def resolution_queries(intents: Iterable[Intent]) -> list[ResolveQuery]:
    return [
        ResolveQuery(i.client_order_id, i.symbol, i.conditional)
        for i in intents
        if not i.state.is_final
    ]


_STATE_OF = {
    OrderStatus.OPEN: IntentState.ACKED,
    OrderStatus.FILLED: IntentState.FILLED,
    OrderStatus.CANCELED: IntentState.CANCELED,
    OrderStatus.EXPIRED: IntentState.CANCELED,
    OrderStatus.REJECTED: IntentState.REJECTED,
}


def update_from_order(order: Order) -> IntentUpdate:
    """The journal update that adopts what the exchange reports for one of our ids."""
    filled = order.filled
    if order.conditional and order.status is OrderStatus.FILLED and filled == 0:
        # The algo API reports a finished (triggered) stop without its executed quantity.
        # A reduce-only stop closed up to its amount; the journal caps it at flat.
        filled = order.amount
    return IntentUpdate(
        state=_STATE_OF[order.status],
        exchange_order_id=order.exchange_order_id or None,
        filled=filled,
        average_price=order.average_price,
    )


# ----- step 2: positions and orders -----


def reconcile(
    *,
    snapshot: AccountSnapshot,
    expected: Mapping[str, Decimal],
    known: Mapping[str, Intent],
    unresolved: Sequence[Intent],
    stop_prices: Mapping[str, Decimal],
    symbols: Sequence[str],
    instance: str,
) -> Reconciliation:
    """``known``: journal intents for (at least) the client ids of the snapshot's open
    orders; ``unresolved``: intents still not final after step 1, apart from ACKED ones."""
    actual = {p.symbol: p.amount for p in snapshot.positions if not p.is_flat}
    mismatches = _order_mismatches(snapshot.open_orders, known, unresolved, instance=instance)
    flagged = {m.symbol for m in mismatches}
    adoptions: list[Adoption] = []
    for symbol in sorted(set(symbols) | set(expected) | set(actual)):
        e, a = expected.get(symbol, ZERO), actual.get(symbol, ZERO)
        if e == a or symbol in flagged:
            continue
        if a == 0 and not _own_stops(snapshot.open_orders, symbol, known):
            adoptions.append(
                Adoption(
                    symbol,
                    e,
                    a,
                    "position went flat while the bot was not looking and its stop is gone "
                    "(stop triggered, or closed by hand or liquidation); adopting flat",
                )
            )
            continue
        if a == 0:
            reason = f"journal expects {e} but the exchange is flat while our stop is still open"
            mismatches.append(Mismatch(symbol, reason, flat_under_listed_stop=True))
            flagged.add(symbol)
            continue
        if e == 0:
            reason = f"position {a} opened outside the bot (the journal expects none)"
        else:
            reason = f"size mismatch: the journal expects {e}, the exchange has {a}"
        mismatches.append(Mismatch(symbol, reason))
        flagged.add(symbol)

    missing = [
        MissingStop(
            symbol,
            a,
            abs(a) - covered,
            stop_prices.get(symbol),
            owned=symbol not in flagged,
        )
        for symbol, a in sorted(actual.items())
        if (covered := stop_coverage(snapshot.open_orders, symbol, a)) < abs(a)
    ]
    orphans = [
        o
        for o in snapshot.open_orders
        if o.conditional and actual.get(o.symbol, ZERO) == 0 and _is_own_stop(o, known)
    ]
    return Reconciliation(tuple(adoptions), tuple(mismatches), tuple(missing), tuple(orphans))


def _order_mismatches(
    open_orders: Iterable[Order],
    known: Mapping[str, Intent],
    unresolved: Sequence[Intent],
    *,
    instance: str,
) -> list[Mismatch]:
    out: list[Mismatch] = []
    for order in open_orders:
        intent = known.get(order.client_order_id)
        what = f"{order.side} {order.type} {order.amount}"
        if intent is None and is_ours(order.client_order_id, instance=instance):
            reason = (
                f"open order {order.client_order_id} ({what}) carries this instance's id but "
                "is missing from the journal"
            )
        elif intent is None:
            reason = (
                f"unknown open order {order.client_order_id or order.exchange_order_id} "
                f"({what}): placed by hand or by another program"
            )
        elif intent.state.is_final:
            reason = (
                f"journal has {order.client_order_id} as {intent.state} but the exchange "
                "shows it open"
            )
        else:
            continue
        out.append(Mismatch(order.symbol, reason))
    for intent in unresolved:
        if intent.state is IntentState.ACKED or intent.state.is_final:
            continue
        out.append(
            Mismatch(
                intent.symbol,
                f"cannot account for {intent.client_order_id} ({intent.purpose} {intent.side} "
                f"{intent.amount}): outcome still unknown",
            )
        )
    return out


def stop_coverage(open_orders: Iterable[Order], symbol: str, position: Decimal) -> Decimal:
    """How much of ``position`` reduce-only stops on the exchange would close (capped)."""
    if position == 0:
        return ZERO
    covered = ZERO
    for order in protective_stops(open_orders, symbol, position):
        # amount 0 on a closePosition stop: it closes whatever is open
        covered += abs(position) if order.amount == 0 else order.amount
    return min(covered, abs(position))


def closing_side(position: Decimal) -> Side:
    """The side of an order that reduces ``position`` (signed, non-zero)."""
    return Side.SELL if position > 0 else Side.BUY


def protective_stops(open_orders: Iterable[Order], symbol: str, position: Decimal) -> list[Order]:
    side = closing_side(position)
    return [
        o
        for o in open_orders
        if o.symbol == symbol
        and o.conditional
        and o.reduce_only
        and o.side is side
        and o.status is OrderStatus.OPEN
    ]


def covering_stop_intents(
    intents: Iterable[Intent], symbol: str, position: Decimal
) -> list[Intent]:
    """Our live (ACKED) stops on ``symbol`` that close ``position``. A stop on the other
    side would open or grow a position, never protect this one, so it does not count."""
    if position == 0:
        return []
    side = closing_side(position)
    return [
        i
        for i in intents
        if i.symbol == symbol
        and i.purpose is Purpose.STOP
        and i.state is IntentState.ACKED
        and i.side is side
    ]


def position_views(snapshot: AccountSnapshot) -> list[PositionView]:
    """Positions with the stop that protects each, for the journal's sync record."""
    views = []
    for p in snapshot.positions:
        if p.is_flat:
            continue
        stops = protective_stops(snapshot.open_orders, p.symbol, p.amount)
        stop = stops[0] if stops else None
        views.append(
            PositionView(
                symbol=p.symbol,
                amount=p.amount,
                entry_price=p.entry_price,
                stop_price=stop.stop_price if stop else None,
                stop_client_order_id=stop.client_order_id if stop else None,
                seen_at_ms=snapshot.taken_at_ms,
            )
        )
    return views


def _is_own_stop(order: Order, known: Mapping[str, Intent]) -> bool:
    intent = known.get(order.client_order_id)
    return intent is not None and intent.purpose is Purpose.STOP


def _own_stops(open_orders: Iterable[Order], symbol: str, known: Mapping[str, Intent]) -> bool:
    return any(o.symbol == symbol and o.conditional and _is_own_stop(o, known) for o in open_orders)
