"""The write-ahead order journal: one SQLite file per instance (the only sqlite3 user).

WAL mode, ``synchronous=FULL``: a committed intent survives power loss, so an order is
never on the wire without a durable record of it. The schema is versioned with
``PRAGMA user_version`` and migrated in order; a journal from a newer trendbotd, a file
that is not a journal, or a corrupt one raises ``JournalError`` (exit 65) and is never
recreated: the file may be the only record of orders that are live on the exchange.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import urllib.parse
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from trendbotd.core.domain import ZERO, Side
from trendbotd.core.records import (
    NON_FINAL_STATES,
    DailyStart,
    Intent,
    IntentState,
    IntentUpdate,
    ModeState,
    PositionView,
    Purpose,
    TradingMode,
)
from trendbotd.errors import JournalError, JournalIOError
from trendbotd.journal.schema import (
    APPLICATION_ID,
    INSERT_INTENT,
    MIGRATIONS,
    SCHEMA_VERSION,
    SELECT_INTENT,
    dec_or_none,
    dec_str,
    intent_row,
    row_to_intent,
)

logger = logging.getLogger(__name__)

# Errors that mean "the file is damaged or not ours" rather than "the disk failed us".
_CORRUPT_CODES = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_FORMAT"})
_MARKS = ", ".join("?" * len(NON_FINAL_STATES))
_TERMINAL = frozenset({IntentState.FILLED, IntentState.CANCELED, IntentState.REJECTED})
_NON_FINAL = [s.value for s in NON_FINAL_STATES]


def open_journal(path: Path, *, read_only: bool = False, any_thread: bool = False) -> Journal:
    """Open (read-write: create if missing, migrate) or open read-only (``mode=ro``).
    ``any_thread``: read-only, used from several threads in turn (the caller serialises)."""
    path = Path(path)
    try:
        conn = _connect_ro(path, any_thread=any_thread) if read_only else _connect_rw(path)
        journal = Journal(conn, path=path, read_only=read_only)
        journal._prepare()
    except sqlite3.Error as e:
        raise _translate(e, path, "open") from e
    return journal


def _connect_ro(path: Path, *, any_thread: bool = False) -> sqlite3.Connection:
    if not path.is_file():
        raise JournalError(f"{path}: no journal here (has the daemon run with this state dir?)")
    return sqlite3.connect(
        _uri(path, "ro"),
        uri=True,
        isolation_level=None,
        timeout=5.0,
        check_same_thread=not any_thread,
    )


def _connect_rw(path: Path) -> sqlite3.Connection:
    if path.exists() and not path.is_file():
        raise JournalError(f"{path}: exists but is not a regular file; refusing to use it")
    if not path.exists():
        # Created here with 0600 so SQLite's -wal/-shm files inherit private permissions.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
            logger.info("journal.created path=%s", path)
        except FileExistsError:
            pass
        except OSError as e:
            raise JournalIOError(f"{path}: cannot create the journal: {e.strerror}") from e
    return sqlite3.connect(_uri(path, "rw"), uri=True, isolation_level=None, timeout=5.0)


def _uri(path: Path, mode: str) -> str:
    return f"file:{urllib.parse.quote(str(path.resolve()))}?mode={mode}"


def _translate(e: sqlite3.Error, path: Path, doing: str) -> JournalError:
    name = getattr(e, "sqlite_errorname", "") or ""
    if name.startswith(tuple(_CORRUPT_CODES)) or (
        isinstance(e, sqlite3.DatabaseError) and not isinstance(e, sqlite3.OperationalError)
    ):
        return JournalError(
            f"{path}: journal is corrupt or not a trendbotd journal ({e}); it is never "
            "recreated: restore it from a backup, or move it aside after checking the "
            "exchange by hand"
        )
    return JournalIOError(f"{path}: journal {doing} failed: {e}")


class Journal:
    """A handle on the journal. Methods that write commit before returning."""

    def __init__(self, conn: sqlite3.Connection, *, path: Path, read_only: bool) -> None:
        self._conn = conn
        self.path = path
        self.read_only = read_only

    # ----- lifecycle -----

    def _prepare(self) -> None:
        conn = self._conn
        conn.execute("PRAGMA busy_timeout = 5000")
        app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if app_id not in (0, APPLICATION_ID) or (app_id == 0 and tables):
            raise JournalError(f"{self.path}: not a trendbotd journal (foreign SQLite database)")
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"{self.path}: journal schema v{version} is newer than this trendbotd "
                f"understands (v{SCHEMA_VERSION}); run the newer trendbotd or restore a backup"
            )
        check = conn.execute("PRAGMA quick_check").fetchall()
        if [tuple(r) for r in check] != [("ok",)]:
            detail = "; ".join(str(r[0]) for r in check[:3])
            raise JournalError(f"{self.path}: journal failed its integrity check: {detail}")
        if self.read_only:
            if version < SCHEMA_VERSION:
                raise JournalError(
                    f"{self.path}: journal schema v{version} predates v{SCHEMA_VERSION}; "
                    "start the daemon once to migrate it"
                )
            return
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise JournalIOError(f"{self.path}: cannot switch the journal to WAL mode ({mode})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        self._migrate(version)

    def _migrate(self, version: int) -> None:
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self._tx() as conn:
                for statement in MIGRATIONS[target - 1]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version = {target}")
            logger.info("journal.migrated path=%s version=%s", self.path, target)

    @property
    def schema_version(self) -> int:
        return int(self._read("PRAGMA user_version")[0][0])

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        if self.read_only:
            raise JournalError(f"{self.path}: opened read-only")
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        except sqlite3.Error as e:
            raise _translate(e, self.path, "write") from e

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as e:
            raise _translate(e, self.path, "read") from e

    # ----- intents -----

    def add_intent(self, intent: Intent) -> tuple[Intent, bool]:
        """Commit a new intent (write-ahead). An existing one with the same id is returned
        unchanged with ``False``: the same decision never becomes two orders."""
        with self._tx() as conn:
            existing = _one_intent(conn, intent.client_order_id)
            if existing is not None:
                return existing, False
            conn.execute(
                INSERT_INTENT,
                intent_row(intent),
            )
        return intent, True

    def get_intent(self, client_order_id: str) -> Intent | None:
        rows = self._read(SELECT_INTENT + " WHERE client_order_id = ?", (client_order_id,))
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
        with self._tx() as conn:
            conn.execute(
                "UPDATE intents SET state = ?, attempts = attempts + 1, sent_ms = ?, "
                "updated_ms = ? WHERE client_order_id = ?",
                (IntentState.SENT.value, now_ms, now_ms, client_order_id),
            )
            return _require(conn, client_order_id, self.path)

    def update_intent(self, client_order_id: str, update: IntentUpdate, *, now_ms: int) -> Intent:
        """Apply what the exchange said. A fill increase is booked as a fill and moves the
        expected position in the same transaction."""
        with self._tx() as conn:
            current = _require(conn, client_order_id, self.path)
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
                before = _expected(conn, current.symbol)
                after = before + signed
                if current.reduce_only and (after * before < 0 or before == 0):
                    after = ZERO  # a reduce-only fill never opens or flips a position
                _set_expected(conn, current.symbol, after, now_ms)
            return _require(conn, client_order_id, self.path)

    def non_final_intents(self) -> list[Intent]:
        rows = self._read(
            SELECT_INTENT + " WHERE state IN (" + _MARKS + ") ORDER BY created_ms, client_order_id",
            _NON_FINAL,
        )
        return [row_to_intent(r) for r in rows]

    def intent_counts(self) -> dict[tuple[Purpose, IntentState], int]:
        """How many intents there are of each purpose in each state (for the metrics)."""
        rows = self._read("SELECT purpose, state, count(*) FROM intents GROUP BY purpose, state")
        return {(Purpose(p), IntentState(s)): int(n) for p, s, n in rows}

    def intents_since(self, since_ms: int, *, symbol: str | None = None) -> list[Intent]:
        sql = SELECT_INTENT + " WHERE created_ms >= ?"
        params: list[Any] = [since_ms]
        if symbol is not None:
            sql += " AND symbol = ?"
            params.append(symbol)
        return [row_to_intent(r) for r in self._read(sql + " ORDER BY created_ms", params)]

    def open_intents(self, symbol: str, *, purpose: Purpose) -> list[Intent]:
        """Non-final intents of one purpose on one symbol (e.g. the live stop)."""
        rows = self._read(
            SELECT_INTENT + " WHERE symbol = ? AND purpose = ? AND state IN (" + _MARKS + ") "
            "ORDER BY created_ms",
            [symbol, purpose.value, *_NON_FINAL],
        )
        return [row_to_intent(r) for r in rows]

    def next_seq(self, symbol: str, candle_time_ms: int, purpose: Purpose) -> int:
        """The first unused sequence number for this (symbol, candle, purpose)."""
        rows = self._read(
            "SELECT max(seq) FROM intents WHERE symbol = ? AND candle_time_ms = ? AND purpose = ?",
            (symbol, candle_time_ms, purpose.value),
        )
        top = rows[0][0]
        return 0 if top is None else int(top) + 1

    def latest_stop_prices(self) -> dict[str, Decimal]:
        """Per symbol, the stop price of the newest stop intent or filled entry's planned stop."""
        rows = self._read(
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
        rows = self._read(sql + " ORDER BY id", params)
        return [(str(c), Side(s), Decimal(a), int(t)) for c, s, a, t in rows]

    # ----- positions -----

    def expected_positions(self) -> dict[str, Decimal]:
        rows = self._read("SELECT symbol, amount FROM expected_positions ORDER BY symbol")
        return {str(s): Decimal(a) for s, a in rows if Decimal(a) != 0}

    def set_expected_position(self, symbol: str, amount: Decimal, *, now_ms: int) -> None:
        """Adopt the exchange's position as what the bot expects (reconciliation)."""
        with self._tx() as conn:
            _set_expected(conn, symbol, amount, now_ms)

    def record_sync(self, positions: Sequence[PositionView], *, taken_at_ms: int) -> None:
        """Positions (with their stops) as seen at one sync; flat symbols may be omitted."""
        with self._tx() as conn:
            sync_id = conn.execute(
                "INSERT INTO syncs (taken_at_ms) VALUES (?)", (taken_at_ms,)
            ).lastrowid
            conn.executemany(
                "INSERT INTO position_snapshots (sync_id, symbol, amount, entry_price, "
                "stop_price, stop_client_order_id) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (
                        sync_id,
                        p.symbol,
                        str(p.amount),
                        str(p.entry_price),
                        dec_str(p.stop_price),
                        p.stop_client_order_id,
                    )
                    for p in positions
                ],
            )

    def last_sync(self) -> tuple[int, list[PositionView]] | None:
        rows = self._read("SELECT id, taken_at_ms FROM syncs ORDER BY id DESC LIMIT 1")
        if not rows:
            return None
        sync_id, taken = int(rows[0][0]), int(rows[0][1])
        snaps = self._read(
            "SELECT symbol, amount, entry_price, stop_price, stop_client_order_id "
            "FROM position_snapshots WHERE sync_id = ? ORDER BY symbol",
            (sync_id,),
        )
        views = [
            PositionView(
                symbol=str(s),
                amount=Decimal(a),
                entry_price=Decimal(e),
                stop_price=dec_or_none(sp),
                stop_client_order_id=sc,
                seen_at_ms=taken,
            )
            for s, a, e, sp, sc in snaps
        ]
        return taken, views

    # ----- guards -----

    def record_guard_decision(
        self,
        *,
        at_ms: int,
        symbol: str,
        guard: str,
        allowed: bool,
        reason: str,
        client_order_id: str | None = None,
    ) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO guard_decisions (at_ms, symbol, guard, allowed, reason, "
                "client_order_id) VALUES (?, ?, ?, ?, ?, ?)",
                (at_ms, symbol, guard, int(allowed), reason, client_order_id),
            )

    def guard_decisions(self, *, limit: int = 20) -> list[tuple[int, str, str, bool, str]]:
        """(at_ms, symbol, guard, allowed, reason), newest first."""
        rows = self._read(
            "SELECT at_ms, symbol, guard, allowed, reason FROM guard_decisions "
            "ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [(int(t), str(s), str(g), bool(a), str(r)) for t, s, g, a, r in rows]

    def prune_history(self, *, before_ms: int) -> None:
        """Drop old sync snapshots and guard decisions. Intents and fills are kept."""
        with self._tx() as conn:
            latest = conn.execute("SELECT max(id) FROM syncs").fetchone()[0]
            conn.execute(
                "DELETE FROM position_snapshots WHERE sync_id IN "
                "(SELECT id FROM syncs WHERE taken_at_ms < ? AND id != ?)",
                (before_ms, latest or 0),
            )
            conn.execute(
                "DELETE FROM syncs WHERE taken_at_ms < ? AND id != ?", (before_ms, latest or 0)
            )
            conn.execute("DELETE FROM guard_decisions WHERE at_ms < ?", (before_ms,))

    # ----- instance state -----

    def get_value(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM kv WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def set_values(self, values: dict[str, str], *, now_ms: int) -> None:
        with self._tx() as conn:
            _put_values(conn, values, now_ms)

    def mode(self) -> ModeState:
        mode = self.get_value("mode")
        if mode is None:
            return ModeState(TradingMode.NORMAL, "", 0)
        return ModeState(
            TradingMode(mode),
            self.get_value("mode_reason") or "",
            int(self.get_value("mode_since_ms") or 0),
        )

    def set_mode(self, mode: TradingMode, *, reason: str, now_ms: int) -> None:
        self.set_values(
            {"mode": mode.value, "mode_reason": reason, "mode_since_ms": str(now_ms)},
            now_ms=now_ms,
        )
        level = logging.INFO if mode is TradingMode.NORMAL else logging.WARNING
        logger.log(level, "journal.mode mode=%s reason=%s", mode, reason)

    def resume(self, *, reason: str, now_ms: int, rebase_daily_start: bool) -> None:
        """An operator's resume, in one transaction: mode NORMAL with ``reason``; with
        ``rebase_daily_start`` the start of day is dropped, so the engine's next tick takes
        the equity it sees then as the day's start (the loss so far no longer counts)."""
        with self._tx() as conn:
            _put_values(
                conn,
                {
                    "mode": TradingMode.NORMAL.value,
                    "mode_reason": reason,
                    "mode_since_ms": str(now_ms),
                    "last_resume_ms": str(now_ms),
                    "last_resume": reason,
                },
                now_ms,
            )
            if rebase_daily_start:
                conn.execute(
                    "DELETE FROM kv WHERE key IN ('daily_start_day', 'daily_start_equity')"
                )
        logger.info("journal.resume reason=%s rebase_daily_start=%s", reason, rebase_daily_start)

    def last_resume_ms(self) -> int | None:
        value = self.get_value("last_resume_ms")
        return int(value) if value is not None else None

    def last_tick_ms(self) -> int | None:
        value = self.get_value("last_tick_ms")
        return int(value) if value is not None else None

    def set_last_tick(self, now_ms: int) -> None:
        self.set_values({"last_tick_ms": str(now_ms)}, now_ms=now_ms)

    def daily_start(self) -> DailyStart | None:
        day, equity = self.get_value("daily_start_day"), self.get_value("daily_start_equity")
        if day is None or equity is None:
            return None
        return DailyStart(int(day), Decimal(equity))

    def set_daily_start(self, start: DailyStart, *, now_ms: int) -> None:
        self.set_values(
            {"daily_start_day": str(start.day), "daily_start_equity": str(start.equity)},
            now_ms=now_ms,
        )


def _put_values(conn: sqlite3.Connection, values: dict[str, str], now_ms: int) -> None:
    conn.executemany(
        "INSERT INTO kv (key, value, updated_ms) VALUES (?, ?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms",
        [(k, v, now_ms) for k, v in values.items()],
    )


def _one_intent(conn: sqlite3.Connection, cid: str) -> Intent | None:
    row = conn.execute(SELECT_INTENT + " WHERE client_order_id = ?", (cid,)).fetchone()
    return None if row is None else row_to_intent(row)


def _require(conn: sqlite3.Connection, cid: str, path: Path) -> Intent:
    intent = _one_intent(conn, cid)
    if intent is None:
        raise JournalError(f"{path}: no intent {cid!r} in the journal")
    return intent


def _expected(conn: sqlite3.Connection, symbol: str) -> Decimal:
    row = conn.execute(
        "SELECT amount FROM expected_positions WHERE symbol = ?", (symbol,)
    ).fetchone()
    return ZERO if row is None else Decimal(row[0])


def _set_expected(conn: sqlite3.Connection, symbol: str, amount: Decimal, now_ms: int) -> None:
    conn.execute(
        "INSERT INTO expected_positions (symbol, amount, updated_ms) VALUES (?, ?, ?) "
        "ON CONFLICT (symbol) DO UPDATE SET amount = excluded.amount, "
        "updated_ms = excluded.updated_ms",
        (symbol, str(amount), now_ms),
    )
