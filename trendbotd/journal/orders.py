"""Order intents and their fills: the write-ahead record of every order (one aggregate of
the journal; its transactions also move the expected position a fill changes)."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

from trendbotd.core.domain import ZERO, Side
from trendbotd.core.records import NON_FINAL_STATES, Intent, IntentState, IntentUpdate, Purpose
from trendbotd.errors import JournalError
from trendbotd.journal.account import expected_amount, set_expected_amount
from trendbotd.journal.schema import (
    INSERT_INTENT,
    SELECT_INTENT,
    dec_str,
    intent_row,
    row_to_intent,
)
from trendbotd.journal.sqlite_db import JournalDb

logger = logging.getLogger(__name__)

_MARKS = ", ".join("?" * len(NON_FINAL_STATES))
_TERMINAL = frozenset({IntentState.FILLED, IntentState.CANCELED, IntentState.REJECTED})
_NON_FINAL = [s.value for s in NON_FINAL_STATES]


class OrderStore:
    """Intents (PENDING -> SENT -> ACKED/FILLED/...) and the fills booked against them."""

    def __init__(self, db: JournalDb) -> None:
        self._db = db

    def add_intent(self, intent: Intent) -> tuple[Intent, bool]:
        """Commit a new intent (write-ahead). An existing one with the same id is returned
        unchanged with ``False``: the same decision never becomes two orders."""
        with self._db.tx() as conn:
            existing = _one_intent(conn, intent.client_order_id)
            if existing is not None:
                return existing, False
            conn.execute(
                INSERT_INTENT,
                intent_row(intent),
            )
        return intent, True

    def get_intent(self, client_order_id: str) -> Intent | None:
        rows = self._db.read(SELECT_INTENT + " WHERE client_order_id = ?", (client_order_id,))
        return row_to_intent(rows[0]) if rows else None

    def intents_by_ids(self, client_order_ids: Iterable[str]) -> dict[str, Intent]:
        found: dict[str, Intent] = {}
        for cid in set(client_order_ids):
            intent = self.get_intent(cid)
            if intent is not None:
                found[cid] = intent
        return found

    def mark_sent(self, client_order_id: str, *, now_ms: int) -> Intent:
        """Committed right before the request leaves: counts the attempt durably."""
        with self._db.tx() as conn:
            conn.execute(
                "UPDATE intents SET state = ?, attempts = attempts + 1, sent_ms = ?, "
                "updated_ms = ? WHERE client_order_id = ?",
                (IntentState.SENT.value, now_ms, now_ms, client_order_id),
            )
            return _require(conn, client_order_id, self._db.path)

    def update_intent(self, client_order_id: str, update: IntentUpdate, *, now_ms: int) -> Intent:
        """Apply what the exchange said. A fill increase is booked as a fill and moves the
        expected position in the same transaction."""
        with self._db.tx() as conn:
            current = _require(conn, client_order_id, self._db.path)
            state = update.state
            if current.state in _TERMINAL and state is not current.state:
                # The exchange never reopens a filled, canceled or refused order: a
                # different report is stale. ABANDONED may still turn out to exist.
                logger.warning(
                    "journal.stale_update cid=%s state=%s reported=%s",
                    client_order_id,
                    current.state,
                    state,
                )
                state = current.state
            filled = current.filled
            if update.filled is not None and update.filled > filled:
                filled = update.filled
            delta = filled - current.filled
            conn.execute(
                "UPDATE intents SET state = ?, exchange_order_id = COALESCE(?, exchange_order_id), "
                "filled = ?, average_price = COALESCE(?, average_price), "
                "last_error = COALESCE(?, last_error), updated_ms = ? WHERE client_order_id = ?",
                (
                    state.value,
                    update.exchange_order_id,
                    str(filled),
                    dec_str(update.average_price),
                    update.last_error,
                    now_ms,
                    client_order_id,
                ),
            )
            if delta > 0:
                conn.execute(
                    "INSERT INTO fills (client_order_id, symbol, side, amount, price, at_ms) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        client_order_id,
                        current.symbol,
                        current.side.value,
                        str(delta),
                        dec_str(update.average_price),
                        now_ms,
                    ),
                )
                signed = delta if current.side is Side.BUY else -delta
                before = expected_amount(conn, current.symbol)
                after = before + signed
                if current.reduce_only and (after * before < 0 or before == 0):
                    after = ZERO  # a reduce-only fill never opens or flips a position
                set_expected_amount(conn, current.symbol, after, now_ms)
            return _require(conn, client_order_id, self._db.path)

    def non_final_intents(self) -> list[Intent]:
        rows = self._db.read(
            SELECT_INTENT + " WHERE state IN (" + _MARKS + ") ORDER BY created_ms, client_order_id",
            _NON_FINAL,
        )
        return [row_to_intent(r) for r in rows]

    def intent_counts(self) -> dict[tuple[Purpose, IntentState], int]:
        """How many intents there are of each purpose in each state (for the metrics)."""
        rows = self._db.read("SELECT purpose, state, count(*) FROM intents GROUP BY purpose, state")
        return {(Purpose(p), IntentState(s)): int(n) for p, s, n in rows}

    def intents_since(self, since_ms: int, *, symbol: str | None = None) -> list[Intent]:
        sql = SELECT_INTENT + " WHERE created_ms >= ?"
        params: list[Any] = [since_ms]
        if symbol is not None:
            sql += " AND symbol = ?"
            params.append(symbol)
        return [row_to_intent(r) for r in self._db.read(sql + " ORDER BY created_ms", params)]

    def open_intents(self, symbol: str, *, purpose: Purpose) -> list[Intent]:
        """Non-final intents of one purpose on one symbol (e.g. the live stop)."""
        rows = self._db.read(
            SELECT_INTENT + " WHERE symbol = ? AND purpose = ? AND state IN (" + _MARKS + ") "
            "ORDER BY created_ms",
            [symbol, purpose.value, *_NON_FINAL],
        )
        return [row_to_intent(r) for r in rows]

    def next_seq(self, symbol: str, candle_time_ms: int, purpose: Purpose) -> int:
        """The first unused sequence number for this (symbol, candle, purpose)."""
        rows = self._db.read(
            "SELECT max(seq) FROM intents WHERE symbol = ? AND candle_time_ms = ? AND purpose = ?",
            (symbol, candle_time_ms, purpose.value),
        )
        top = rows[0][0]
        return 0 if top is None else int(top) + 1

    def latest_stop_prices(self) -> dict[str, Decimal]:
        """Per symbol, the stop price of the newest stop intent or filled entry's planned stop."""
        rows = self._db.read(
            "SELECT symbol, purpose, stop_price, protective_stop, filled FROM intents "
            "WHERE purpose IN ('stop', 'entry') ORDER BY created_ms, rowid"
        )
        prices: dict[str, Decimal] = {}
        for symbol, purpose, stop_price, protective, filled in rows:
            if purpose == Purpose.STOP.value and stop_price is not None:
                prices[str(symbol)] = Decimal(stop_price)
            elif protective is not None and Decimal(filled) > 0:
                prices[str(symbol)] = Decimal(protective)
        return prices

    def fills(self, client_order_id: str | None = None) -> list[tuple[str, Side, Decimal, int]]:
        """(client id, side, amount, at_ms) of booked fills, oldest first."""
        sql = "SELECT client_order_id, side, amount, at_ms FROM fills"
        params: tuple[str, ...] = ()
        if client_order_id is not None:
            sql += " WHERE client_order_id = ?"
            params = (client_order_id,)
        rows = self._db.read(sql + " ORDER BY id", params)
        return [(str(c), Side(s), Decimal(a), int(t)) for c, s, a, t in rows]


def _one_intent(conn: sqlite3.Connection, cid: str) -> Intent | None:
    row = conn.execute(SELECT_INTENT + " WHERE client_order_id = ?", (cid,)).fetchone()
    return None if row is None else row_to_intent(row)


def _require(conn: sqlite3.Connection, cid: str, path: Path) -> Intent:
    intent = _one_intent(conn, cid)
    if intent is None:
        raise JournalError(f"{path}: no intent {cid!r} in the journal")
    return intent
