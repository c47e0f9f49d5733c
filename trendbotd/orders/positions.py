"""Positions on top of the executor: entries that get their stop, closes that end flat,
the startup resolver and periodic sync, and the shutdown policy.

Rules kept here:
- an entry fill is followed at once by a reduce-only STOP_MARKET (algo) order; if the
  stop cannot be placed the position is closed;
- a close is a reduce-only market order, driven through drops with the same client id,
  repeated (new intent) only while the exchange still shows a position, never on top of
  an earlier close whose outcome is unknown;
- sync resolves every non-final intent by client id, reconciles, quietly adopts what
  happened while the bot was down, replaces missing stops of positions it owns, and
  puts the bot in reduce-only mode on anything it cannot explain.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from trendbotd.config import ShutdownPolicy
from trendbotd.domain import ZERO, AccountSnapshot, Order, OrderType, Position, Side
from trendbotd.errors import TrendbotError
from trendbotd.exitcodes import ExitCode
from trendbotd.orders.executor import OrderExecutor
from trendbotd.orders.reconcile import (
    Reconciliation,
    position_views,
    reconcile,
)
from trendbotd.orders.records import Intent, IntentSpec, IntentState, Purpose
from trendbotd.orders.sync_mode import keep_mode_true

logger = logging.getLogger(__name__)


class CloseFailedError(TrendbotError):
    """A position could not be confirmed flat within the bounded attempts."""

    exit_code = ExitCode.UNAVAILABLE


@dataclass(frozen=True, slots=True)
class CloseResult:
    symbol: str
    flat: bool
    orders: tuple[Intent, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class OpenResult:
    entry: Intent
    stop: Intent | None
    close: CloseResult | None  # set when the stop failed and the position was closed

    @property
    def protected(self) -> bool:
        return self.stop is not None and self.stop.state is IntentState.ACKED


@dataclass(frozen=True, slots=True)
class SyncResult:
    reconciliation: Reconciliation
    resolved: tuple[Intent, ...]  # non-final intents after their resolution
    stops_placed: tuple[Intent, ...]
    closed: tuple[CloseResult, ...]
    unprotected: tuple[str, ...]  # symbols with an open position and no stop (alert!)
    snapshot: AccountSnapshot  # the positions and orders the decision was made on


@dataclass(frozen=True, slots=True)
class ShutdownReport:
    policy: ShutdownPolicy
    canceled: tuple[Intent, ...]
    closed: tuple[CloseResult, ...]


class PositionManager:
    def __init__(
        self, *, executor: OrderExecutor, symbols: Sequence[str], close_rounds: int
    ) -> None:
        self.executor = executor
        self.journal = executor.journal
        self.exchange = executor.exchange
        self.symbols = tuple(symbols)
        self.close_rounds = close_rounds

    # ----- entries and stops -----

    def open_position(self, entry: IntentSpec) -> OpenResult:
        """Send an entry; once (partly) filled, protect it with a stop or close it.

        The same decision made again (a restart re-running it) sends nothing: the entry
        is found in the journal, and the protection of a settled entry belongs to sync.
        """
        if entry.purpose is not Purpose.ENTRY or entry.protective_stop is None:
            raise ValueError("open_position needs an entry intent with its protective_stop")
        prior = self.journal.get_intent(self.executor.client_id(entry))
        intent = self.executor.submit(entry)
        if intent.filled <= 0:
            return OpenResult(intent, None, None)
        if prior is not None and prior.state.is_final:
            live = self._live_stops(entry.symbol)
            return OpenResult(intent, live[-1] if live else None, None)
        self.executor.crash.hit("between_fill_and_stop")
        return self._protect_entry(intent, entry.protective_stop)

    def _live_stops(self, symbol: str) -> list[Intent]:
        return [
            i
            for i in self.journal.open_intents(symbol, purpose=Purpose.STOP)
            if i.state is IntentState.ACKED
        ]

    def _protect_entry(self, entry: Intent, stop_price: Decimal) -> OpenResult:
        """Cover what the journal expects on the symbol and live stops do not yet cover."""
        live = self._live_stops(entry.symbol)
        expected = self.journal.expected_positions().get(entry.symbol, ZERO)
        gap = abs(expected) - sum((i.amount for i in live), ZERO)
        if gap <= 0:
            return OpenResult(entry, live[-1] if live else None, None)
        stop = self.protect(
            entry.symbol,
            position=gap if expected > 0 else -gap,
            stop_price=stop_price,
            candle_time_ms=entry.candle_time_ms,
            parent=entry.client_order_id,
        )
        if stop.state is IntentState.ACKED:
            return OpenResult(entry, stop, None)
        logger.error(
            "stop.failed symbol=%s cid=%s state=%s error=%s: closing the position",
            entry.symbol,
            stop.client_order_id,
            stop.state,
            stop.last_error,
        )
        close = self.close_position(
            entry.symbol,
            purpose=Purpose.FLATTEN,
            candle_time_ms=entry.candle_time_ms,
            reason=f"protective stop {stop.client_order_id} {stop.state}: {stop.last_error}",
        )
        return OpenResult(entry, stop, close)

    def protect(
        self,
        symbol: str,
        *,
        position: Decimal,
        stop_price: Decimal,
        candle_time_ms: int,
        parent: str | None,
    ) -> Intent:
        """Place a reduce-only STOP_MARKET covering ``position`` (signed)."""
        seq = self.journal.next_seq(symbol, candle_time_ms, Purpose.STOP)
        stop = self.executor.submit(
            IntentSpec(
                symbol=symbol,
                side=Side.SELL if position > 0 else Side.BUY,
                type=OrderType.STOP_MARKET,
                amount=abs(position),
                purpose=Purpose.STOP,
                candle_time_ms=candle_time_ms,
                seq=seq,
                stop_price=stop_price,
                reduce_only=True,
                parent_client_order_id=parent,
            )
        )
        logger.info(
            "stop.%s symbol=%s cid=%s amount=%s trigger=%s",
            "placed" if stop.state is IntentState.ACKED else "not_placed",
            symbol,
            stop.client_order_id,
            stop.amount,
            stop_price,
        )
        return stop

    # ----- closing -----

    def close_position(
        self, symbol: str, *, purpose: Purpose, candle_time_ms: int, reason: str
    ) -> CloseResult:
        """Reduce-only market orders until the exchange shows the symbol flat, then cancel
        our stops and resting entries there. Raises CloseFailedError when bounded
        attempts run out."""
        if purpose not in (Purpose.EXIT, Purpose.FLATTEN):
            raise ValueError(f"close purpose must be exit or flatten, not {purpose}")
        # a strategy exit is routine; a flatten (shutdown policy, operator) is worth a warning
        log = logger.info if purpose is Purpose.EXIT else logger.warning
        log("position.closing symbol=%s purpose=%s reason=%s", symbol, purpose.value, reason)
        self._cancel_open(symbol, Purpose.ENTRY, reason="closing the position")
        sent: list[Intent] = []
        for _ in range(self.close_rounds):
            if not self._settle_earlier_closes(symbol):
                break
            position = self._position(symbol)
            if position.is_flat:
                self._after_flat(symbol)
                logger.info("position.flat symbol=%s orders=%s", symbol, len(sent))
                return CloseResult(symbol, True, tuple(sent), reason)
            intent = self.executor.submit(
                IntentSpec(
                    symbol=symbol,
                    side=Side.SELL if position.amount > 0 else Side.BUY,
                    type=OrderType.MARKET,
                    amount=abs(position.amount),
                    purpose=purpose,
                    candle_time_ms=candle_time_ms,
                    seq=self.journal.next_seq(symbol, candle_time_ms, purpose),
                    reduce_only=True,
                )
            )
            sent.append(intent)
            self.executor.crash.hit("mid_close")
        if self._settle_earlier_closes(symbol) and self._position(symbol).is_flat:
            self._after_flat(symbol)
            return CloseResult(symbol, True, tuple(sent), reason)
        raise CloseFailedError(
            f"{symbol}: still not confirmed flat after {len(sent)} close orders ({reason})"
        )

    def _settle_earlier_closes(self, symbol: str) -> bool:
        """Drive earlier exit/flatten intents to a final state; False if one stays open."""
        ok = True
        for purpose in (Purpose.EXIT, Purpose.FLATTEN):
            for intent in self.journal.open_intents(symbol, purpose=purpose):
                settled = self.executor.drive(intent, allow_resend=True)
                if not settled.state.is_final:
                    logger.error(
                        "position.close_blocked symbol=%s cid=%s state=%s",
                        symbol,
                        settled.client_order_id,
                        settled.state,
                    )
                    ok = False
        return ok

    def _after_flat(self, symbol: str) -> None:
        self._cancel_open(symbol, Purpose.STOP, reason="position is flat")
        expected = self.journal.expected_positions().get(symbol, ZERO)
        if expected != 0:
            logger.info("position.expected_reset symbol=%s was=%s", symbol, expected)
            self.journal.set_expected_position(symbol, ZERO, now_ms=self.executor.clock.now_ms())

    def _cancel_open(self, symbol: str, purpose: Purpose, *, reason: str) -> list[Intent]:
        done = []
        for intent in self.journal.open_intents(symbol, purpose=purpose):
            if intent.state is IntentState.ACKED:
                done.append(self.executor.cancel(intent, reason=reason))
            else:
                done.append(self.executor.drive(intent, allow_resend=False))
        return done

    def _position(self, symbol: str) -> Position:
        return self._positions([symbol]).get(symbol, Position(symbol, ZERO, ZERO))

    def _positions(self, symbols: Sequence[str]) -> dict[str, Position]:
        """The exchange's non-flat positions (bounded retries; the last error propagates)."""
        found = self.executor.read_with_retry(
            "positions", lambda: self.exchange.fetch_positions(list(symbols))
        )
        return {p.symbol: p for p in found if not p.is_flat}

    # ----- startup resolver and sync -----

    def sync(self, snapshot: AccountSnapshot) -> SyncResult:
        """Resolve every non-final intent by client id, reconcile, act on the result.

        At startup pass the AccountSnapshot of the startup sync; later, any fresh one.
        Positions and open orders are fetched again if resolving changed anything.
        """
        before = self.journal.non_final_intents()
        resolved = self._resolve_all(before, snapshot.open_orders)
        changed = any(
            (a.state, a.filled) != (b.state, b.filled)
            for a, b in zip(before, resolved, strict=True)
        )
        if changed:
            snapshot = self._refetch(snapshot)
        rec = self._reconcile(snapshot)
        now = self.executor.clock.now_ms()
        for adoption in rec.adoptions:
            logger.warning(
                "reconcile.adopted symbol=%s expected=%s actual=%s reason=%s",
                adoption.symbol,
                adoption.expected,
                adoption.actual,
                adoption.reason,
            )
            self.journal.set_expected_position(adoption.symbol, adoption.actual, now_ms=now)
        acted = bool(rec.adoptions)
        for orphan in rec.orphan_stops:
            intent = self.journal.get_intent(orphan.client_order_id)
            if intent is not None:
                self.executor.cancel(intent, reason="orphan stop on a flat symbol")
                acted = True
        placed, closed, unprotected = self._fix_missing_stops(rec)
        reason = rec.reduce_only_reason()
        if unprotected:
            gap = f"no stop and no known stop price for {', '.join(unprotected)}"
            reason = f"{reason}; {gap}" if reason else gap
        if reason is not None:
            logger.error("reconcile.mismatch %s", reason)
        keep_mode_true(self.journal, reason, now_ms=now)  # enters reduce-only, or restates why
        if acted or placed or closed:
            snapshot = self._refetch(snapshot)
        self.journal.record_sync(position_views(snapshot), taken_at_ms=snapshot.taken_at_ms)
        return SyncResult(
            rec, tuple(resolved), tuple(placed), tuple(closed), tuple(unprotected), snapshot
        )

    def _resolve_all(self, intents: Sequence[Intent], listed: Sequence[Order]) -> list[Intent]:
        by_cid = {o.client_order_id: o for o in listed}
        out = []
        for intent in intents:
            if intent.state is IntentState.ACKED:
                # a live stop still listed open costs no request per sync
                out.append(
                    self.executor.refresh_from_listing(intent, by_cid.get(intent.client_order_id))
                )
            else:
                logger.warning("resolver.pending %s", intent.describe())
                out.append(self.executor.drive(intent, allow_resend=False))
        return out

    def _refetch(self, snapshot: AccountSnapshot) -> AccountSnapshot:
        # Orders first: a stop that fires between the two reads then shows as a stop on a
        # flat symbol (harmless), never as a position without its stop.
        orders = tuple(
            self.executor.read_with_retry(
                "open_orders", lambda: self.exchange.fetch_open_orders(list(self.symbols))
            )
        )
        positions = tuple(self._positions(self.symbols).values())
        return dataclasses.replace(
            snapshot,
            positions=positions,
            open_orders=orders,
            taken_at_ms=self.executor.clock.now_ms(),
        )

    def _reconcile(self, snapshot: AccountSnapshot) -> Reconciliation:
        unresolved = [
            i for i in self.journal.non_final_intents() if i.state is not IntentState.ACKED
        ]
        return reconcile(
            snapshot=snapshot,
            expected=self.journal.expected_positions(),
            known=self.journal.intents_by_ids(o.client_order_id for o in snapshot.open_orders),
            unresolved=unresolved,
            stop_prices=self.journal.latest_stop_prices(),
            symbols=self.symbols,
            instance=self.executor.instance,
        )

    def _fix_missing_stops(
        self, rec: Reconciliation
    ) -> tuple[list[Intent], list[CloseResult], list[str]]:
        placed: list[Intent] = []
        closed: list[CloseResult] = []
        unprotected: list[str] = []
        for gap in rec.missing_stops:
            if not gap.owned or gap.stop_price is None:
                logger.error(
                    "stop.missing symbol=%s position=%s owned=%s known_price=%s",
                    gap.symbol,
                    gap.position,
                    gap.owned,
                    gap.stop_price,
                )
                unprotected.append(gap.symbol)
                continue
            signed = gap.uncovered if gap.position > 0 else -gap.uncovered
            candle = self._last_entry_candle(gap.symbol)
            stop = self.protect(
                gap.symbol,
                position=signed,
                stop_price=gap.stop_price,
                candle_time_ms=candle,
                parent=None,
            )
            placed.append(stop)
            if stop.state is not IntentState.ACKED:
                closed.append(
                    self.close_position(
                        gap.symbol,
                        purpose=Purpose.FLATTEN,
                        candle_time_ms=candle,
                        reason=f"missing stop could not be placed: {stop.last_error}",
                    )
                )
        return placed, closed, unprotected

    def _last_entry_candle(self, symbol: str) -> int:
        entries = [
            i
            for i in self.journal.intents_since(0, symbol=symbol)
            if i.purpose is Purpose.ENTRY and i.filled > 0
        ]
        if entries:
            return entries[-1].candle_time_ms
        return self.executor.clock.now_ms() // 1000 * 1000

    # ----- shutdown -----

    def shutdown(self, policy: ShutdownPolicy) -> ShutdownReport:
        """``leave``: positions stay with their exchange-side stops; ``cancel_entries``:
        also cancel resting entry orders; ``flatten``: cancel entries and close every
        position (stops are canceled once flat)."""
        logger.info("shutdown.policy policy=%s", policy)
        canceled: list[Intent] = []
        closed: list[CloseResult] = []
        if policy in ("cancel_entries", "flatten"):
            for symbol in self.symbols:
                canceled += self._cancel_open(symbol, Purpose.ENTRY, reason="shutdown")
        if policy == "flatten":
            now = self.executor.clock.now_ms()
            for symbol in sorted(self._positions(self.symbols)):
                closed.append(
                    self.close_position(
                        symbol,
                        purpose=Purpose.FLATTEN,
                        candle_time_ms=now // 1000 * 1000,
                        reason="shutdown policy flatten",
                    )
                )
        return ShutdownReport(policy, tuple(canceled), tuple(closed))
