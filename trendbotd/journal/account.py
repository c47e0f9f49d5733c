"""Account state as the daemon believes it: expected positions and what each sync saw (one
aggregate of the journal)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from decimal import Decimal

from trendbotd.core.domain import ZERO
from trendbotd.core.records import PositionView
from trendbotd.journal.schema import dec_or_none, dec_str
from trendbotd.journal.sqlite_db import JournalDb


class AccountStore:
    """Expected positions (moved by fills and by reconciliation) and sync snapshots."""

    def __init__(self, db: JournalDb) -> None:
        self._db = db

    def expected_positions(self) -> dict[str, Decimal]:
        rows = self._db.read("SELECT symbol, amount FROM expected_positions ORDER BY symbol")
        return {str(s): Decimal(a) for s, a in rows if Decimal(a) != 0}

    def set_expected_position(self, symbol: str, amount: Decimal, *, now_ms: int) -> None:
        """Adopt the exchange's position as what the bot expects (reconciliation)."""
        with self._db.tx() as conn:
            set_expected_amount(conn, symbol, amount, now_ms)

    def record_sync(self, positions: Sequence[PositionView], *, taken_at_ms: int) -> None:
        """Positions (with their stops) as seen at one sync; flat symbols may be omitted."""
        with self._db.tx() as conn:
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
        rows = self._db.read("SELECT id, taken_at_ms FROM syncs ORDER BY id DESC LIMIT 1")
        if not rows:
            return None
        sync_id, taken = int(rows[0][0]), int(rows[0][1])
        snaps = self._db.read(
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


def expected_amount(conn: sqlite3.Connection, symbol: str) -> Decimal:
    row = conn.execute(
        "SELECT amount FROM expected_positions WHERE symbol = ?", (symbol,)
    ).fetchone()
    return ZERO if row is None else Decimal(row[0])


def set_expected_amount(
    conn: sqlite3.Connection, symbol: str, amount: Decimal, now_ms: int
) -> None:
    conn.execute(
        "INSERT INTO expected_positions (symbol, amount, updated_ms) VALUES (?, ?, ?) "
        "ON CONFLICT (symbol) DO UPDATE SET amount = excluded.amount, "
        "updated_ms = excluded.updated_ms",
        (symbol, str(amount), now_ms),
    )
