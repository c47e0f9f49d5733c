"""The startup resolver and periodic sync of PositionManager.

Resolve every non-final intent by client id, reconcile, quietly adopt what happened while
the bot was down, cancel our stops left on a flat symbol, and protect every position of
the bot's symbols before anything else runs (at startup: before READY):

- a position the bot owns whose stop is missing gets it back at the journal's price;
- one with no known stop price, or one the bot does not own, gets an emergency stop
  ``[risk] emergency_stop_distance`` from the mark on the losing side;
- a stop the exchange refuses (-2021: the market is past it) closes an owned position.

Anything the bot cannot explain puts it in reduce-only mode.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from trendbotd.core.domain import ZERO, AccountSnapshot, Order, OrderStatus, Position, Side
from trendbotd.core.reconcile import MissingStop, Reconciliation, position_views, reconcile
from trendbotd.core.records import Intent, IntentState, Purpose
from trendbotd.core.stop_placement import emergency_stop_price
from trendbotd.trading.account_reads import orders_then_positions
from trendbotd.trading.sync_mode import keep_mode_true

if TYPE_CHECKING:
    from trendbotd.trading.closes import CloseResult
    from trendbotd.trading.positions import PositionManager

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SyncResult:
    reconciliation: Reconciliation
    resolved: tuple[Intent, ...]  # non-final intents after their resolution
    stops_placed: tuple[Intent, ...]
    closed: tuple[CloseResult, ...]
    unprotected: tuple[str, ...]  # symbols with an open position and no stop (alert!)
    snapshot: AccountSnapshot  # the positions and orders the decision was made on


def run_sync(pm: PositionManager, snapshot: AccountSnapshot) -> SyncResult:
    """At startup pass the AccountSnapshot of the startup sync; later, any fresh one.
    Positions and open orders are fetched again if resolving changed anything."""
    journal, executor = pm.journal, pm.executor
    before = journal.orders.non_final_intents()
    resolved = _resolve_all(pm, before, snapshot.open_orders)
    changed = any(
        (a.state, a.filled) != (b.state, b.filled) for a, b in zip(before, resolved, strict=True)
    )
    if changed:
        snapshot = _refetch(pm, snapshot)
        for was, now_ in zip(before, resolved, strict=True):
            if now_.purpose is Purpose.STOP and now_.filled > was.filled:
                _alert_stop_fired(pm, now_)
    rec = _reconcile(pm, snapshot)
    if rec.worth_reading_again:
        snapshot, again = _read_again(pm, snapshot, rec)
        resolved = _latest(resolved, again)
        rec = _reconcile(pm, snapshot)
    now = executor.clock.now_ms()
    for adoption in rec.adoptions:
        logger.warning(
            "reconcile.adopted symbol=%s expected=%s actual=%s reason=%s",
            adoption.symbol,
            adoption.expected,
            adoption.actual,
            adoption.reason,
        )
        journal.account.set_expected_position(adoption.symbol, adoption.actual, now_ms=now)
        if adoption.actual == 0 and adoption.expected != 0:
            # closed on the exchange (its stop fired, liquidation, by hand): PnL not known here
            pm.alerts.emit(
                "position.closed",
                key=adoption.symbol,
                symbol=adoption.symbol,
                purpose="exchange",
                reason=adoption.reason,
                amount=str(abs(adoption.expected)),
            )
    acted = bool(rec.adoptions)
    for orphan in rec.orphan_stops:
        intent = journal.orders.get_intent(orphan.client_order_id)
        if intent is not None and not _entry_in_doubt(pm, intent):
            executor.cancel(intent, reason="orphan stop on a flat symbol")
            acted = True
    placed, closed, unprotected = _fix_missing_stops(pm, rec, snapshot)
    reason = rec.reduce_only_reason()
    if unprotected:
        gap = f"no stop could be placed for {', '.join(unprotected)}"
        reason = f"{reason}; {gap}" if reason else gap
    if reason is not None:
        logger.error("reconcile.mismatch %s", reason)
    keep_mode_true(journal, reason, now_ms=now)  # enters reduce-only, or restates why
    if acted or placed or closed:
        snapshot = _refetch(pm, snapshot)
    journal.account.record_sync(position_views(snapshot), taken_at_ms=snapshot.taken_at_ms)
    return SyncResult(
        rec, tuple(resolved), tuple(placed), tuple(closed), tuple(unprotected), snapshot
    )


def _alert_stop_fired(pm: PositionManager, stop: Intent) -> None:
    """Our stop executed on the exchange: the position it covered is closed (or reduced)."""
    parent = pm.journal.orders.get_intent(stop.parent_client_order_id or "")
    pnl = None
    if parent is not None and parent.average_price and stop.average_price is not None:
        sign = 1 if parent.side is Side.BUY else -1
        pnl = str((stop.average_price - parent.average_price) * stop.filled * sign)
    pm.alerts.emit(
        "position.closed",
        alert_id=f"position.closed-{stop.client_order_id}",
        key=stop.symbol,
        symbol=stop.symbol,
        purpose="stop",
        reason=f"stop triggered at {stop.stop_price}",
        amount=str(stop.filled),
        price=None if stop.average_price is None else str(stop.average_price),
        pnl=pnl,
    )


def _read_again(
    pm: PositionManager, snapshot: AccountSnapshot, rec: Reconciliation
) -> tuple[AccountSnapshot, list[Intent]]:
    """One more read, never a loop: a stop that fired between the reads is gone by now.
    Its intent is resolved against the new listing before reconciling (asked by id:
    FILLED), so its fill moves the expected position once, not adopted on top of it."""
    logger.info("reconcile.read_again reason=%s", rec.reduce_only_reason())
    snapshot = _refetch(pm, snapshot)
    pending = pm.journal.orders.non_final_intents()
    again = _resolve_all(pm, pending, snapshot.open_orders)
    for was, now_ in zip(pending, again, strict=True):
        if now_.purpose is Purpose.STOP and now_.filled > was.filled:
            _alert_stop_fired(pm, now_)
    return snapshot, again


def _latest(first: Sequence[Intent], again: Sequence[Intent]) -> list[Intent]:
    """``first`` in its order with each intent replaced by its state in ``again``."""
    newer = {i.client_order_id: i for i in again}
    return [newer.get(i.client_order_id, i) for i in first]


def _entry_in_doubt(pm: PositionManager, stop: Intent) -> bool:
    """A stop placed before its entry stays while that entry's outcome is unknown: the
    entry may yet show up filled, and the stop is reduce-only (harmless while flat)."""
    if stop.parent_client_order_id is None:
        return False
    parent = pm.journal.orders.get_intent(stop.parent_client_order_id)
    return parent is not None and not parent.state.is_final


def _resolve_all(
    pm: PositionManager, intents: Sequence[Intent], listed: Sequence[Order]
) -> list[Intent]:
    """Each intent after its resolution, in the order given. Entries are resolved first: a
    stop goes out before its entry but can only fire against the position an entry opened,
    so its fill is booked after that entry's (booked first, on a flat expectation, it was
    capped at flat and the entry's fill then counted on top of the closed position)."""
    by_cid = {o.client_order_id: o for o in listed}
    done: dict[str, Intent] = {}
    for intent in sorted(intents, key=lambda i: i.purpose is not Purpose.ENTRY):
        cid = intent.client_order_id
        if intent.state is IntentState.ACKED:
            # a live stop still listed open costs no request per sync
            done[cid] = _refresh_from_listing(pm, intent, by_cid.get(cid))
        else:
            logger.warning("resolver.pending %s", intent.describe())
            done[cid] = pm.executor.drive(intent, allow_resend=False)
    return [done[i.client_order_id] for i in intents]


def _refresh_from_listing(pm: PositionManager, intent: Intent, listed: Order | None) -> Intent:
    """One ACKED intent against this sync's open-orders listing: still listed and
    unchanged -> nothing to ask or write; listed with news (a partial fill) -> adopted;
    not listed (filled, triggered, canceled) -> asked by client id."""
    if listed is None:
        return pm.executor.refresh(intent)
    if listed.status is OrderStatus.OPEN and listed.filled == intent.filled:
        return intent
    return pm.executor.book.adopt(intent, listed)


def _refetch(pm: PositionManager, snapshot: AccountSnapshot) -> AccountSnapshot:
    # Each read is retried by the adapter alone (one level, see trendbotd.core.retry).
    # Stamped before the reads: a stop that fires while they run is later than the
    # snapshot, not before it.
    taken = pm.executor.clock.now_ms()
    orders, positions = orders_then_positions(pm.exchange, pm.symbols)
    return dataclasses.replace(snapshot, positions=positions, open_orders=orders, taken_at_ms=taken)


def _reconcile(pm: PositionManager, snapshot: AccountSnapshot) -> Reconciliation:
    journal = pm.journal
    unresolved = [i for i in journal.orders.non_final_intents() if i.state is not IntentState.ACKED]
    return reconcile(
        snapshot=snapshot,
        expected=journal.account.expected_positions(),
        known=journal.orders.intents_by_ids(o.client_order_id for o in snapshot.open_orders),
        unresolved=unresolved,
        stop_prices=journal.orders.latest_stop_prices(),
        symbols=pm.symbols,
        instance=pm.executor.instance,
    )


def _fix_missing_stops(
    pm: PositionManager, rec: Reconciliation, snapshot: AccountSnapshot
) -> tuple[list[Intent], list[CloseResult], list[str]]:
    placed: list[Intent] = []
    closed: list[CloseResult] = []
    unprotected: list[str] = []
    for gap in rec.missing_stops:
        if gap.symbol not in pm.symbols:
            continue
        stop_price = _stop_price_for(pm, gap, snapshot)
        signed = gap.uncovered if gap.position > 0 else -gap.uncovered
        candle = _last_entry_candle(pm, gap.symbol)
        stop = pm.protect(
            gap.symbol,
            position=signed,
            stop_price=stop_price,
            candle_time_ms=candle,
            parent=None,
        )
        placed.append(stop)
        outcome = "placed" if stop.state is IntentState.ACKED else stop.state.value.lower()
        # after the stop went out, not before: the alert never delays the protection (a
        # crash in between finds the same gap again at the next start)
        pm.alerts.emit(
            "position.unprotected",
            key=gap.symbol,
            symbol=gap.symbol,
            position=str(gap.position),
            uncovered=str(gap.uncovered),
            owned=str(gap.owned).lower(),
            action=f"stop {outcome} at {stop_price}",
        )
        if stop.state is IntentState.ACKED:
            continue
        if gap.owned:
            closed.append(pm.close_after_refused_stop(stop, candle_time_ms=candle))
        else:
            # not ours to close: reduce-only mode and an alert instead
            logger.error(
                "stop.missing symbol=%s position=%s owned=False error=%s",
                gap.symbol,
                gap.position,
                stop.last_error,
            )
            unprotected.append(gap.symbol)
    return placed, closed, unprotected


def _stop_price_for(pm: PositionManager, gap: MissingStop, snapshot: AccountSnapshot) -> Decimal:
    """The journal's stop price for a position the bot owns; otherwise an emergency stop
    from the mark (a position opened by hand is still protected, not just reported)."""
    if gap.owned and gap.stop_price is not None:
        return gap.stop_price
    position = snapshot.position(gap.symbol) or Position(gap.symbol, gap.position, ZERO)
    price = emergency_stop_price(
        position, distance=pm.emergency_stop_distance, market=snapshot.markets.get(gap.symbol)
    )
    logger.warning(
        "stop.emergency symbol=%s position=%s owned=%s known_price=%s trigger=%s",
        gap.symbol,
        gap.position,
        gap.owned,
        gap.stop_price,
        price,
    )
    return price


def _last_entry_candle(pm: PositionManager, symbol: str) -> int:
    entries = [
        i
        for i in pm.journal.orders.intents_since(0, symbol=symbol)
        if i.purpose is Purpose.ENTRY and i.filled > 0
    ]
    if entries:
        return entries[-1].candle_time_ms
    return pm.executor.clock.now_ms() // 1000 * 1000
