"""Test helper: the order-safety invariants, checked on the exchange's own books.

Used by the kill/restart cycles (books read back from the paper state file after a
SIGKILL or while the daemon is frozen) and by ``bench/bench_soak.py`` (the live books
between two ticks). Every check compares what the simulated exchange holds with what the
journal intended:

- duplicates: one client order id never became two exchange orders;
- write-ahead: every order of ours on the exchange has a journal intent;
- one entry per decided candle;
- exposure: the position never exceeds what the journal expects plus entries whose
  outcome the journal does not know yet, and is never smaller without a reason (an exit
  in flight, or a stop that triggered after the last sync);
- protection: every open position is covered by reduce-only stops on the closing side,
  unless an entry of this process is on its way to its stop or a close is in flight;
  and every sync the daemon recorded (the startup sync before READY included) shows a
  stop on every position it saw: races with the next tick cannot hide a sync that failed
  to put a stop back;
- unprotected time, measured by the exchange itself (``trendbotd/sim/protection.py``):
  the longest stretch a position went without a covering stop stays within a bound (0 ms
  where the stop precedes the entry; 1000 ms where a stop has to be put back).
"""

from __future__ import annotations

import collections
import sqlite3
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from trendbotd.core.client_ids import is_ours, parse_client_id
from trendbotd.core.clock import ManualClock
from trendbotd.core.domain import ZERO, Side
from trendbotd.core.records import Intent, IntentState, Purpose
from trendbotd.journal.store import Journal
from trendbotd.sim import SimConfig, SimExchange
from trendbotd.sim.codec import restore
from trendbotd.sim.orders import SimAlgoOrder, SimOrder
from trendbotd.sim.persist import StateFile
from trendbotd.sim.state import SimState

_CLOSES = (Purpose.EXIT, Purpose.FLATTEN)


@dataclass(frozen=True, slots=True)
class Books:
    """The exchange side of the account at one instant. The records are the account's
    own objects, in id order: use a Books before the account changes again."""

    clock_ms: int
    positions: dict[str, Decimal]  # unified symbol -> signed amount, non-flat only
    orders: list[SimOrder]
    algos: list[SimAlgoOrder]
    # the exchange's own measure, by unified symbol: {unprotected_ms, max_gap_ms, ...}
    protection: dict[str, dict[str, Any]] = field(default_factory=dict)

    def covered(self, symbol: str, amount: Decimal) -> Decimal:
        """How much of ``amount`` open reduce-only stops on the closing side would close."""
        closing = "SELL" if amount > 0 else "BUY"
        total = ZERO
        for a in self.algos:
            if a.is_open and a.spec.unified == symbol and a.side == closing:
                if a.close_position:
                    return abs(amount)
                if a.reduce_only:
                    total += a.qty
        return total

    def triggered_since(self, symbol: str, since_ms: int) -> bool:
        return any(
            a.spec.unified == symbol and a.trigger_ms and a.trigger_ms >= since_ms
            for a in self.algos
        )


def books_of(state: SimState, *, clock_ms: int) -> Books:
    """The live books (in-process: take them between ticks, while the clock stands)."""
    with state.lock:
        positions = {
            state.specs[sid].unified: book.amount
            for sid, book in state.books.items()
            if book.amount != 0
        }
        protection = protection_report(state, now_ms=clock_ms)
        return Books(
            clock_ms,
            positions,
            list(state.orders.values()),
            list(state.algos.values()),
            protection,
        )


def protection_report(state: SimState, *, now_ms: int | None = None) -> dict[str, dict[str, Any]]:
    """The exchange's unprotected-time figures by unified symbol."""
    with state.lock:
        now = state.now_ms() if now_ms is None else now_ms
        return state.protection.report(
            now, unified={sid: s.unified for sid, s in state.specs.items()}
        )


def max_unprotected_ms(protection: dict[str, dict[str, Any]]) -> int:
    """The longest gap of any symbol (0 when every position always had its stop)."""
    return max((int(r["max_gap_ms"]) for r in protection.values()), default=0)


def unprotected_time_violations(
    protection: dict[str, dict[str, Any]], *, bound_ms: int
) -> list[str]:
    return [
        f"unprotected time: {symbol} went {r['max_gap_ms']} ms without a covering stop "
        f"(bound {bound_ms} ms; {r['gaps']} gaps, {r['unprotected_ms']} ms in all)"
        for symbol, r in sorted(protection.items())
        if int(r["max_gap_ms"]) > bound_ms
    ]


class StateFileReader:
    """Reads a paper state file with the simulator's own codec into an unstarted sim."""

    def __init__(self, path: Path, *, symbols: tuple[str, ...]) -> None:
        self.path = path
        self._clock = ManualClock(0)
        self._sim = SimExchange(SimConfig(symbols=symbols, clock=self._clock))

    def read(self) -> Books | None:
        data = StateFile(self.path).read()
        if data is None:
            return None
        clock_ms = int(data["clock_ms"])
        self._clock.advance(clock_ms - self._clock.now_ms())
        restore(self._sim.state, data)  # fresh records; nothing ever matches on this copy
        return books_of(self._sim.state, clock_ms=clock_ms)


@dataclass
class Ledger:
    """What the exchange has held over a whole run (its history is pruned as it grows).

    Client id -> exchange id never changes once an order exists, so each order is
    recorded once, when first seen (the bot's entries are market orders: filled or
    expired by then)."""

    instance: str
    plain: dict[str, set[int]] = field(default_factory=lambda: collections.defaultdict(set))
    algo: dict[str, set[int]] = field(default_factory=lambda: collections.defaultdict(set))
    entries: dict[tuple[str, int], set[int]] = field(
        default_factory=lambda: collections.defaultdict(set)
    )
    foreign: set[str] = field(default_factory=set)
    _top_order: int = 0
    _top_algo: int = 0
    _unsettled: set[str] = field(default_factory=set)  # client ids to look up in the journal

    @property
    def orders_seen(self) -> int:
        return sum(map(len, self.plain.values())) + sum(map(len, self.algo.values()))

    def record(self, books: Books, journal: Journal | None) -> list[str]:
        """Add the books' new orders; violations of the duplicate, write-ahead and
        one-entry-per-candle rules among them."""
        out: list[str] = []
        for o in _newer(books.orders, self._top_order, key=lambda o: o.order_id):
            self._top_order = max(self._top_order, o.order_id)
            if o.orig_type or not self._ours(o.client_id):
                continue  # the market order a triggered stop became, or not ours
            out += self._add(self.plain, o.client_id, o.order_id)
            parsed = parse_client_id(o.client_id)
            if parsed and parsed.purpose is Purpose.ENTRY and o.executed > 0:
                key = (o.spec.unified, parsed.candle_time_s)
                self.entries[key].add(o.order_id)
                if len(self.entries[key]) > 1:
                    out.append(f"entries: filled entry orders {sorted(self.entries[key])} "
                               f"for {key[0]} candle {key[1]}s")  # fmt: skip
        for a in _newer(books.algos, self._top_algo, key=lambda a: a.algo_id):
            self._top_algo = max(self._top_algo, a.algo_id)
            if self._ours(a.client_algo_id):
                out += self._add(self.algo, a.client_algo_id, a.algo_id)
        if journal is not None:
            for cid in sorted(self._unsettled):
                if journal.orders.get_intent(cid) is None:
                    out.append(f"write-ahead: exchange order {cid} has no journal intent")
            self._unsettled.clear()
        return out

    def _add(self, table: dict[str, set[int]], cid: str, exchange_id: int) -> list[str]:
        ids = table[cid]
        ids.add(exchange_id)
        self._unsettled.add(cid)
        return [f"duplicate: {cid} is exchange orders {sorted(ids)}"] if len(ids) > 1 else []

    def _ours(self, cid: str) -> bool:
        if is_ours(cid, instance=self.instance):
            return True
        if cid not in self.foreign:
            self.foreign.add(cid)
        return False


T = TypeVar("T", SimOrder, SimAlgoOrder)


def _newer(records: list[T], top: int, *, key: Callable[[T], int]) -> Iterator[T]:
    """Records with an id above ``top`` (records are in id order: scan from the end)."""
    for r in reversed(records):
        if key(r) <= top:
            return
        yield r


def _signed(intent: Intent, amount: Decimal) -> Decimal:
    return amount if intent.side is Side.BUY else -amount


def _same_sign(a: Decimal, b: Decimal) -> bool:
    return (a > 0 and b > 0) or (a < 0 and b < 0)


def exposure_violations(books: Books, journal: Journal) -> list[str]:
    """The exchange position against what the journal intended, per symbol."""
    expected = journal.account.expected_positions()
    open_intents = journal.orders.non_final_intents()
    last = journal.account.last_sync()
    synced_at = last[0] if last else 0
    out = []
    for symbol in sorted(set(expected) | set(books.positions)):
        actual = books.positions.get(symbol, ZERO)
        want = expected.get(symbol, ZERO)
        mine = [i for i in open_intents if i.symbol == symbol]
        # non-final entries may have filled without the journal knowing it yet
        pending = [_signed(i, i.amount - i.filled) for i in mine if i.purpose is Purpose.ENTRY]
        bound = (abs(want) if _same_sign(want, actual) else ZERO) + sum(
            (abs(p) for p in pending if _same_sign(p, actual)), ZERO
        )
        if actual != 0 and abs(actual) > bound:
            out.append(
                f"exposure: {symbol} exchange {actual} above intended (journal {want}, "
                f"entries in flight {pending})"
            )
        short = want != 0 and (not _same_sign(actual, want) or abs(actual) < abs(want))
        closing = any(i.purpose in _CLOSES for i in mine)
        if short and not closing and not books.triggered_since(symbol, synced_at):
            out.append(
                f"exposure: {symbol} exchange {actual} below the journal's {want} with no "
                "close in flight and no stop triggered since the last sync"
            )
    return out


def protection_violations(
    books: Books, journal: Journal, *, in_flight_from_ms: int | None
) -> list[str]:
    """Open positions without stops. ``in_flight_from_ms``: entries made since then may be
    between their fill and their stop, and closes may be in flight; None: no allowance."""
    out = []
    for symbol, amount in sorted(books.positions.items()):
        covered = books.covered(symbol, amount)
        if covered >= abs(amount):
            continue
        if in_flight_from_ms is not None and _in_flight(journal, symbol, in_flight_from_ms):
            continue
        out.append(f"unprotected: {symbol} position {amount}, stops cover {covered}")
    return out


def _in_flight(journal: Journal, symbol: str, since_ms: int) -> bool:
    if any(i.purpose in _CLOSES for i in journal.orders.non_final_intents() if i.symbol == symbol):
        return True
    recent = journal.orders.intents_since(since_ms, symbol=symbol)
    entries = [i for i in recent if i.purpose is Purpose.ENTRY]
    if not entries:
        return False
    newest = entries[-1]
    if newest.state.is_final and newest.filled == 0:
        return False  # refused or abandoned: it opened nothing
    return not any(
        i.purpose is Purpose.STOP
        and i.parent_client_order_id == newest.client_order_id
        and i.state is IntentState.ACKED
        for i in recent
    )


class SyncRecords:
    """The journal's record of each sync, read-only: positions the daemon saw on the
    exchange at the end of a sync, each with the stop it found (or none)."""

    def __init__(self, path: Path) -> None:
        uri = f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro"
        self._conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=5.0)
        self._seen = 0  # the newest sync id checked

    def close(self) -> None:
        self._conn.close()

    def unprotected(self) -> list[str]:
        """Positions recorded without a stop by any sync since the last call."""
        rows = self._conn.execute(
            "SELECT s.id, s.taken_at_ms, p.symbol, p.amount, p.stop_client_order_id "
            "FROM syncs s LEFT JOIN position_snapshots p ON p.sync_id = s.id "
            "WHERE s.id > ? ORDER BY s.id",
            (self._seen,),
        ).fetchall()
        out = []
        for sync_id, taken_ms, symbol, amount, stop in rows:
            self._seen = max(self._seen, int(sync_id))
            if symbol is not None and stop is None and Decimal(amount) != 0:
                out.append(f"unprotected: sync {sync_id} at {taken_ms} saw {symbol} {amount} "
                           "without a stop")  # fmt: skip
        return out
