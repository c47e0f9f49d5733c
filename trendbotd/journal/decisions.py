"""Guard decisions: every block (and notable allow) a pre-trade guard made, for ``status``
and the operator (one aggregate of the journal)."""

from __future__ import annotations

from trendbotd.journal.sqlite_db import JournalDb


class DecisionLog:
    """The guards' verdicts, newest first when read."""

    def __init__(self, db: JournalDb) -> None:
        self._db = db

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
        with self._db.tx() as conn:
            conn.execute(
                "INSERT INTO guard_decisions (at_ms, symbol, guard, allowed, reason, "
                "client_order_id) VALUES (?, ?, ?, ?, ?, ?)",
                (at_ms, symbol, guard, int(allowed), reason, client_order_id),
            )

    def guard_decisions(self, *, limit: int = 20) -> list[tuple[int, str, str, bool, str]]:
        """(at_ms, symbol, guard, allowed, reason), newest first."""
        rows = self._db.read(
            "SELECT at_ms, symbol, guard, allowed, reason FROM guard_decisions "
            "ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [(int(t), str(s), str(g), bool(a), str(r)) for t, s, g, a, r in rows]
