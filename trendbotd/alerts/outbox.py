"""The alert outbox: ``<state_dir>/<instance>.alerts.db`` (SQLite, WAL), next to the journal.

Every alert is a row with a stable id; each channel that takes it has a delivery row
(pending -> sent). Rows survive a crash: the next run, or ``trendbotd alert`` started by
``OnFailure=``, sends what is left. A repeated id (one crash seen both by the restarted
daemon and by the alert unit) is ignored, so one crash gives one alert.

Bounded: beyond ``max_alerts`` rows the oldest delivered ones go first, then the oldest
undelivered ones, counted in ``dropped`` (the sink reports it).

The ``runs`` table tells the next start whether the last run stopped cleanly.
Kept apart from the order journal on purpose: an alert must never wait on, or break, the
write-ahead path of an order.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from trendbotd.alerts.events import Severity
from trendbotd.alerts.policy import PendingAlert

logger = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 1
_BUSY_TIMEOUT_MS: Final = 2000

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS alerts(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL UNIQUE,
    event TEXT NOT NULL,
    severity INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    coalesce_key TEXT NOT NULL,
    text TEXT NOT NULL,
    fields TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries(
    seq INTEGER NOT NULL REFERENCES alerts(seq) ON DELETE CASCADE,
    channel TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'sent')),
    attempts INTEGER NOT NULL DEFAULT 0,
    sent_ms INTEGER,
    PRIMARY KEY (seq, channel)
);
CREATE INDEX IF NOT EXISTS deliveries_by_state ON deliveries(channel, state, seq);
CREATE TABLE IF NOT EXISTS runs(
    run INTEGER PRIMARY KEY AUTOINCREMENT,
    invocation_id TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_ms INTEGER NOT NULL,
    stopped_ms INTEGER,
    exit_code INTEGER
);
CREATE TABLE IF NOT EXISTS counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


def outbox_path(state_dir: Path, instance: str) -> Path:
    return state_dir / f"{instance}.alerts.db"


@dataclass(frozen=True, slots=True)
class NewAlert:
    alert_id: str
    event: str
    severity: Severity
    created_ms: int
    coalesce_key: str
    text: str
    fields: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class StoredAlert:
    seq: int
    alert_id: str
    event: str
    severity: Severity
    created_ms: int
    text: str
    fields: dict[str, str]


@dataclass(frozen=True, slots=True)
class RunRecord:
    run: int
    invocation_id: str
    pid: int
    started_ms: int
    stopped_ms: int | None
    exit_code: int | None

    @property
    def clean(self) -> bool:
        return self.stopped_ms is not None


class Outbox:
    """Thread-safe: each thread gets its own connection (sender threads, the emitting one)."""

    def __init__(self, path: Path, *, max_alerts: int) -> None:
        self.path = path
        self.max_alerts = max_alerts
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        conn = self._conn()
        conn.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")  # idempotent
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # -- connections -------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path,
                isolation_level=None,
                timeout=_BUSY_TIMEOUT_MS / 1000,
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL: a committed alert survives a process crash; only a power loss
            # may lose the last ones, which is fine for a notification.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            # No checkpoint (write-back and fsync) inside an emitting caller's commit: the
            # sender thread checkpoints after its own bookkeeping (``checkpoint``).
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            self._local.conn = conn
            with self._guard:
                self._connections.append(conn)
        return conn

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def checkpoint(self) -> None:
        """Copy the WAL back into the database where no reader needs it (never blocks)."""
        self._conn().execute("PRAGMA wal_checkpoint(PASSIVE)")

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.checkpoint()
        with self._guard:
            for conn in self._connections:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._connections.clear()
        self._local = threading.local()

    # -- alerts ------------------------------------------------------------------------

    def add(self, alert: NewAlert, channels: Sequence[str]) -> bool:
        """Store the alert with a pending delivery per channel. False when its id is known
        (already stored, perhaps already sent): nothing is added."""
        with self._tx() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO alerts(alert_id, event, severity, created_ms, "
                "coalesce_key, text, fields) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    alert.alert_id,
                    alert.event,
                    int(alert.severity),
                    alert.created_ms,
                    alert.coalesce_key,
                    alert.text,
                    json.dumps(dict(alert.fields), sort_keys=True),
                ),
            )
            if cur.rowcount == 0:
                return False
            seq = cur.lastrowid
            conn.executemany(
                "INSERT INTO deliveries(seq, channel, state) VALUES (?, ?, 'pending')",
                [(seq, channel) for channel in channels],
            )
            self._trim(conn)
        return True

    def _trim(self, conn: sqlite3.Connection) -> None:
        excess = int(conn.execute("SELECT COUNT(*) FROM alerts").fetchone()[0]) - self.max_alerts
        if excess <= 0:
            return
        # Delivered (or channel-less) alerts first: only their ids are still useful.
        done = conn.execute(
            "SELECT seq FROM alerts a WHERE NOT EXISTS (SELECT 1 FROM deliveries d "
            "WHERE d.seq = a.seq AND d.state = 'pending') ORDER BY seq LIMIT ?",
            (excess,),
        ).fetchall()
        self._delete(conn, [row[0] for row in done])
        excess -= len(done)
        if excess <= 0:
            return
        lost = conn.execute("SELECT seq FROM alerts ORDER BY seq LIMIT ?", (excess,)).fetchall()
        self._delete(conn, [row[0] for row in lost])
        conn.execute(
            "INSERT INTO counters(name, value) VALUES ('dropped', ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (len(lost),),
        )

    @staticmethod
    def _delete(conn: sqlite3.Connection, seqs: list[int]) -> None:
        conn.executemany("DELETE FROM deliveries WHERE seq = ?", [(s,) for s in seqs])
        conn.executemany("DELETE FROM alerts WHERE seq = ?", [(s,) for s in seqs])

    def dropped(self) -> int:
        row = self._conn().execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
        return int(row[0]) if row else 0

    def pending(self, channel: str, *, limit: int = 200) -> list[PendingAlert]:
        rows = (
            self._conn()
            .execute(
                "SELECT a.seq, a.alert_id, a.event, a.severity, a.created_ms, a.text, "
                "a.coalesce_key FROM deliveries d JOIN alerts a ON a.seq = d.seq "
                "WHERE d.channel = ? AND d.state = 'pending' ORDER BY a.seq LIMIT ?",
                (channel, limit),
            )
            .fetchall()
        )
        return [
            PendingAlert(
                seq=int(r[0]),
                alert_id=str(r[1]),
                event=str(r[2]),
                severity=Severity(int(r[3])),
                created_ms=int(r[4]),
                text=str(r[5]),
                key=str(r[6]),
            )
            for r in rows
        ]

    def depth(self, channel: str | None = None) -> int:
        sql = "SELECT COUNT(*) FROM deliveries WHERE state = 'pending'"
        args: tuple[Any, ...] = ()
        if channel is not None:
            sql += " AND channel = ?"
            args = (channel,)
        return int(self._conn().execute(sql, args).fetchone()[0])

    def fields(self, seq: int) -> dict[str, str]:
        row = self._conn().execute("SELECT fields FROM alerts WHERE seq = ?", (seq,)).fetchone()
        if row is None:
            return {}
        value = json.loads(row[0])
        return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}

    def mark_sent(self, channel: str, seqs: Sequence[int], *, now_ms: int) -> None:
        with self._tx() as conn:
            conn.executemany(
                "UPDATE deliveries SET state = 'sent', sent_ms = ?, attempts = attempts + 1 "
                "WHERE seq = ? AND channel = ?",
                [(now_ms, s, channel) for s in seqs],
            )

    def mark_attempt(self, channel: str, seqs: Sequence[int]) -> None:
        with self._tx() as conn:
            conn.executemany(
                "UPDATE deliveries SET attempts = attempts + 1 WHERE seq = ? AND channel = ?",
                [(s, channel) for s in seqs],
            )

    def all_alerts(self) -> list[StoredAlert]:
        """Every stored alert, oldest first (status, tests)."""
        rows = (
            self._conn()
            .execute(
                "SELECT seq, alert_id, event, severity, created_ms, text, fields FROM alerts "
                "ORDER BY seq"
            )
            .fetchall()
        )
        return [
            StoredAlert(
                int(r[0]),
                str(r[1]),
                str(r[2]),
                Severity(int(r[3])),
                int(r[4]),
                str(r[5]),
                json.loads(r[6]),
            )
            for r in rows
        ]

    # -- runs --------------------------------------------------------------------------

    def begin_run(
        self, *, invocation_id: str, pid: int, now_ms: int
    ) -> tuple[int, RunRecord | None]:
        """Record this run's start; return its number and the previous run, if any."""
        with self._tx() as conn:
            row = conn.execute(
                "SELECT run, invocation_id, pid, started_ms, stopped_ms, exit_code FROM runs "
                "ORDER BY run DESC LIMIT 1"
            ).fetchone()
            cur = conn.execute(
                "INSERT INTO runs(invocation_id, pid, started_ms) VALUES (?, ?, ?)",
                (invocation_id, pid, now_ms),
            )
            run = int(cur.lastrowid or 0)
            conn.execute("DELETE FROM runs WHERE run < ?", (run - 50,))
        previous = (
            None
            if row is None
            else RunRecord(
                int(row[0]),
                str(row[1]),
                int(row[2]),
                int(row[3]),
                None if row[4] is None else int(row[4]),
                None if row[5] is None else int(row[5]),
            )
        )
        return run, previous

    def end_run(self, run: int, *, exit_code: int, now_ms: int) -> None:
        with self._tx() as conn:
            conn.execute(
                "UPDATE runs SET stopped_ms = ?, exit_code = ? WHERE run = ?",
                (now_ms, exit_code, run),
            )


class ChannelLock:
    """flock on ``<outbox>.<channel>.lock``: whoever holds it is the only one sending that
    channel's rows, so the daemon and ``trendbotd alert`` never send the same alert twice."""

    def __init__(self, outbox: Path, channel: str) -> None:
        self.path = outbox.with_name(f"{outbox.name}.{channel}.lock")
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return False  # held by another pass of this process: not reentrant
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None
