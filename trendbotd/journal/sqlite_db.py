"""The journal's SQLite file: opening, integrity, migrations and the transaction discipline
shared by every aggregate (the only sqlite3 user).

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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from trendbotd.errors import JournalError, JournalIOError
from trendbotd.journal.schema import APPLICATION_ID, MIGRATIONS

logger = logging.getLogger(__name__)

# Errors that mean "the file is damaged or not ours" rather than "the disk failed us".
_CORRUPT_CODES = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_FORMAT"})


def connect_db(
    path: Path,
    *,
    read_only: bool = False,
    any_thread: bool = False,
    migrations: Sequence[Sequence[str]] = MIGRATIONS,
) -> JournalDb:
    """Open (read-write: create if missing, migrate) or open read-only (``mode=ro``).
    ``any_thread``: read-only, used from several threads in turn (the caller serialises).
    ``migrations``: the schema's (tests try their own on top of the real ones)."""
    path = Path(path)
    try:
        conn = _connect_ro(path, any_thread=any_thread) if read_only else _connect_rw(path)
        db = JournalDb(conn, path=path, read_only=read_only, migrations=migrations)
        db.prepare()
    except sqlite3.Error as e:
        raise _translate(e, path, "open") from e
    return db


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


class JournalDb:
    """One connection to the journal file; every aggregate writes through ``tx()``."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        path: Path,
        read_only: bool,
        migrations: Sequence[Sequence[str]] = MIGRATIONS,
    ) -> None:
        self._conn = conn
        self.path = path
        self.read_only = read_only
        self._migrations = migrations

    def prepare(self) -> None:
        conn, latest = self._conn, len(self._migrations)
        conn.execute("PRAGMA busy_timeout = 5000")
        app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if app_id not in (0, APPLICATION_ID) or (app_id == 0 and tables):
            raise JournalError(f"{self.path}: not a trendbotd journal (foreign SQLite database)")
        if version > latest:
            raise JournalError(
                f"{self.path}: journal schema v{version} is newer than this trendbotd "
                f"understands (v{latest}); run the newer trendbotd or restore a backup"
            )
        check = conn.execute("PRAGMA quick_check").fetchall()
        if [tuple(r) for r in check] != [("ok",)]:
            detail = "; ".join(str(r[0]) for r in check[:3])
            raise JournalError(f"{self.path}: journal failed its integrity check: {detail}")
        if self.read_only:
            if version < latest:
                raise JournalError(
                    f"{self.path}: journal schema v{version} predates v{latest}; "
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
        for target in range(version + 1, len(self._migrations) + 1):
            with self.tx() as conn:
                for statement in self._migrations[target - 1]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version = {target}")
            logger.info("journal.migrated path=%s version=%s", self.path, target)

    @property
    def schema_version(self) -> int:
        return int(self.read("PRAGMA user_version")[0][0])

    def close(self) -> None:
        self._conn.close()

    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
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

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as e:
            raise _translate(e, self.path, "read") from e
