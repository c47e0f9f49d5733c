"""Operator controls and instance state: the trading mode (and whether a sync entered it),
resume, the day's starting equity, the last tick and the newest decided candle per symbol
(one aggregate of the journal: the one-row ``controls`` table and ``decided_candles``)."""

from __future__ import annotations

import logging
import sqlite3
from decimal import Decimal
from typing import Any

from trendbotd.core.records import DailyStart, ModeState, TradingMode
from trendbotd.journal.sqlite_db import JournalDb

logger = logging.getLogger(__name__)


def write_mode(conn: sqlite3.Connection, mode: TradingMode, *, reason: str, now_ms: int) -> None:
    """The mode, inside a caller's transaction (a flatten request halts in its own)."""
    conn.execute(
        "UPDATE controls SET mode = ?, mode_reason = ?, mode_since_ms = ?, updated_ms = ?",
        (mode.value, reason, now_ms, now_ms),
    )


class ControlStore:
    """What an operator or the loop sets and the next tick reads."""

    def __init__(self, db: JournalDb) -> None:
        self._db = db

    def _get(self, column: str) -> Any:
        # column names are this class's constants, never input
        return self._db.read(f"SELECT {column} FROM controls")[0][0]  # noqa: S608

    def _set(self, now_ms: int, **columns: object) -> None:
        assigned = ", ".join(f"{name} = ?" for name in columns)
        with self._db.tx() as conn:
            conn.execute(
                f"UPDATE controls SET {assigned}, updated_ms = ?",  # noqa: S608
                (*columns.values(), now_ms),
            )

    def mode(self) -> ModeState:
        mode, reason, since_ms = self._db.read(
            "SELECT mode, mode_reason, mode_since_ms FROM controls"
        )[0]
        return ModeState(TradingMode(mode), str(reason), int(since_ms))

    def set_mode(self, mode: TradingMode, *, reason: str, now_ms: int) -> None:
        with self._db.tx() as conn:
            write_mode(conn, mode, reason=reason, now_ms=now_ms)
        _log_mode(mode, reason)

    def resume(self, *, reason: str, now_ms: int, rebase_daily_start: bool) -> None:
        """An operator's resume, in one transaction: mode NORMAL with ``reason``; with
        ``rebase_daily_start`` the start of day is dropped, so the engine's next tick takes
        the equity it sees then as the day's start (the loss so far no longer counts)."""
        with self._db.tx() as conn:
            write_mode(conn, TradingMode.NORMAL, reason=reason, now_ms=now_ms)
            conn.execute(
                "UPDATE controls SET last_resume_ms = ?, last_resume = ?", (now_ms, reason)
            )
            if rebase_daily_start:
                conn.execute(
                    "UPDATE controls SET daily_start_day = NULL, daily_start_equity = NULL"
                )
        logger.info("journal.resume reason=%s rebase_daily_start=%s", reason, rebase_daily_start)

    def last_resume_ms(self) -> int | None:
        return _int_or_none(self._get("last_resume_ms"))

    def last_resume_reason(self) -> str | None:
        value = self._get("last_resume")
        return None if value is None else str(value)

    # ----- a mode a sync entered (trading/sync_mode.py) -----

    def mode_auto_since_ms(self) -> int | None:
        """``since_ms`` of the last mode a sync entered (a mode set otherwise differs)."""
        return _int_or_none(self._get("mode_auto_since_ms"))

    def mode_resolved(self) -> tuple[int, int] | None:
        """(``since_ms`` of the mode, when its reasons stopped holding), or None."""
        since, at = self._db.read("SELECT mode_resolved_since_ms, mode_resolved_ms FROM controls")[
            0
        ]
        return None if since is None or at is None else (int(since), int(at))

    def enter_auto_mode(self, mode: TradingMode, *, reason: str, now_ms: int) -> None:
        """A mode entered by a sync, marked as such, with nothing yet resolved."""
        with self._db.tx() as conn:
            write_mode(conn, mode, reason=reason, now_ms=now_ms)
            conn.execute(
                "UPDATE controls SET mode_auto_since_ms = ?, mode_resolved_since_ms = NULL, "
                "mode_resolved_ms = NULL",
                (now_ms,),
            )
        _log_mode(mode, reason)

    def restate_mode_reason(self, reason: str, *, now_ms: int) -> None:
        """What holds now replaces the reason; it holds, so the mode is not resolved."""
        self._set(now_ms, mode_reason=reason, mode_resolved_since_ms=None, mode_resolved_ms=None)

    def mark_mode_resolved(self, *, since_ms: int, now_ms: int) -> None:
        """The reasons of the mode entered at ``since_ms`` no longer hold since ``now_ms``."""
        self._set(now_ms, mode_resolved_since_ms=since_ms, mode_resolved_ms=now_ms)

    # ----- the loop's own state -----

    def last_tick_ms(self) -> int | None:
        return _int_or_none(self._get("last_tick_ms"))

    def set_last_tick(self, now_ms: int) -> None:
        self._set(now_ms, last_tick_ms=now_ms)

    def daily_start(self) -> DailyStart | None:
        day, equity = self._db.read("SELECT daily_start_day, daily_start_equity FROM controls")[0]
        if day is None or equity is None:
            return None
        return DailyStart(int(day), Decimal(equity))

    def set_daily_start(self, start: DailyStart, *, now_ms: int) -> None:
        self._set(now_ms, daily_start_day=start.day, daily_start_equity=str(start.equity))

    def decided_candle(self, symbol: str) -> int | None:
        """Open time of the newest candle the engine has decided on for ``symbol``."""
        rows = self._db.read("SELECT candle_ms FROM decided_candles WHERE symbol = ?", (symbol,))
        return int(rows[0][0]) if rows else None

    def set_decided_candle(self, symbol: str, candle_ms: int, *, now_ms: int) -> None:
        with self._db.tx() as conn:
            conn.execute(
                "INSERT INTO decided_candles (symbol, candle_ms, updated_ms) VALUES (?, ?, ?) "
                "ON CONFLICT (symbol) DO UPDATE SET candle_ms = excluded.candle_ms, "
                "updated_ms = excluded.updated_ms",
                (symbol, candle_ms, now_ms),
            )


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _log_mode(mode: TradingMode, reason: str) -> None:
    level = logging.INFO if mode is TradingMode.NORMAL else logging.WARNING
    logger.log(level, "journal.mode mode=%s reason=%s", mode, reason)
