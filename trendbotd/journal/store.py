"""The write-ahead journal: one SQLite file per instance, split by aggregate.

``journal.orders`` (intents and fills), ``journal.account`` (expected positions, sync
snapshots), ``journal.decisions`` (guard verdicts) and ``journal.controls`` (mode, resume,
daily start, last tick, decided candles) share one connection and one transaction discipline
(``JournalDb.tx``: BEGIN IMMEDIATE ... COMMIT, fsync'd in WAL mode); so do the operator's
flatten request (operator_requests.py) and the clock offset record (clock_record.py), each
in its own typed table. Which aggregate a method lives on says what changes together; none
reaches into another's tables except a fill, which moves the expected position in the same
transaction, and a flatten request, which halts in the same transaction.
"""

from __future__ import annotations

from pathlib import Path

from trendbotd.journal.account import AccountStore
from trendbotd.journal.controls import ControlStore
from trendbotd.journal.decisions import DecisionLog
from trendbotd.journal.orders import OrderStore
from trendbotd.journal.sqlite_db import JournalDb, connect_db


def open_journal(path: Path, *, read_only: bool = False, any_thread: bool = False) -> Journal:
    """Open (read-write: create if missing, migrate) or open read-only (``mode=ro``).
    ``any_thread``: read-only, used from several threads in turn (the caller serialises)."""
    return Journal(connect_db(path, read_only=read_only, any_thread=any_thread))


class Journal:
    """A handle on the journal. Methods that write commit before returning."""

    def __init__(self, db: JournalDb) -> None:
        self.db = db  # the connection, for maintenance and checks of its settings
        self.path = db.path
        self.read_only = db.read_only
        self.orders = OrderStore(db)
        self.account = AccountStore(db)
        self.decisions = DecisionLog(db)
        self.controls = ControlStore(db)

    @property
    def schema_version(self) -> int:
        return self.db.schema_version

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def prune_history(self, *, before_ms: int) -> None:
        """Drop old sync snapshots and guard decisions. Intents and fills are kept."""
        with self.db.tx() as conn:
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
