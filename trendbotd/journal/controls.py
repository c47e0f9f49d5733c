"""Operator controls and instance state: the trading mode, resume, the day's starting
equity, the last tick, and small named values (one aggregate of the journal)."""

from __future__ import annotations

import logging
import sqlite3
from decimal import Decimal

from trendbotd.core.records import DailyStart, ModeState, TradingMode
from trendbotd.journal.sqlite_db import JournalDb

logger = logging.getLogger(__name__)

_DECIDED_PREFIX = "decided_candle:"


class ControlStore:
    """What an operator or the loop sets and the next tick reads."""

    def __init__(self, db: JournalDb) -> None:
        self._db = db

    def get_value(self, key: str) -> str | None:
        rows = self._db.read("SELECT value FROM kv WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def set_values(self, values: dict[str, str], *, now_ms: int) -> None:
        with self._db.tx() as conn:
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
        with self._db.tx() as conn:
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

    def decided_candle(self, symbol: str) -> int | None:
        """Open time of the newest candle the engine has decided on for ``symbol``."""
        value = self.get_value(_DECIDED_PREFIX + symbol)
        return int(value) if value is not None else None

    def set_decided_candle(self, symbol: str, candle_ms: int, *, now_ms: int) -> None:
        self.set_values({_DECIDED_PREFIX + symbol: str(candle_ms)}, now_ms=now_ms)


def _put_values(conn: sqlite3.Connection, values: dict[str, str], now_ms: int) -> None:
    conn.executemany(
        "INSERT INTO kv (key, value, updated_ms) VALUES (?, ?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms",
        [(k, v, now_ms) for k, v in values.items()],
    )
