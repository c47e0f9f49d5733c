"""The journal's schema as ordered migrations. Migration i brings user_version to i + 1.

Append new migrations; never edit a released one. Decimals are stored as TEXT (exact),
times as integer UTC milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from trendbotd.core.domain import OrderType, Side
from trendbotd.core.records import Intent, IntentState, Purpose

APPLICATION_ID = 0x54424A31  # "TBJ1": marks the file as a trendbotd journal

_STATES = "'PENDING','SENT','ACKED','FILLED','CANCELED','REJECTED','UNKNOWN','ABANDONED'"
_NON_FINAL = "'PENDING','SENT','ACKED','UNKNOWN'"

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # v1: order intents, fills, expected positions, sync snapshots, guard decisions, state
    (
        f"""
        CREATE TABLE intents (
            client_order_id TEXT PRIMARY KEY,
            symbol TEXT NOT NULL,
            side TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
            type TEXT NOT NULL CHECK (type IN ('market', 'limit', 'stop_market')),
            amount TEXT NOT NULL,
            price TEXT,
            stop_price TEXT,
            reduce_only INTEGER NOT NULL CHECK (reduce_only IN (0, 1)),
            purpose TEXT NOT NULL CHECK (purpose IN ('entry', 'stop', 'exit', 'flatten')),
            candle_time_ms INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            state TEXT NOT NULL CHECK (state IN ({_STATES})),
            protective_stop TEXT,
            parent_client_order_id TEXT,
            exchange_order_id TEXT,
            filled TEXT NOT NULL DEFAULT '0',
            average_price TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            sent_ms INTEGER,
            created_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL,
            last_error TEXT,
            UNIQUE (symbol, candle_time_ms, purpose, seq)
        )
        """,
        f"CREATE INDEX intents_non_final ON intents (state) WHERE state IN ({_NON_FINAL})",
        "CREATE INDEX intents_symbol_created ON intents (symbol, created_ms)",
        """
        CREATE TABLE fills (
            id INTEGER PRIMARY KEY,
            client_order_id TEXT NOT NULL REFERENCES intents (client_order_id),
            symbol TEXT NOT NULL,
            side TEXT NOT NULL,
            amount TEXT NOT NULL,
            price TEXT,
            at_ms INTEGER NOT NULL
        )
        """,
        "CREATE INDEX fills_cid ON fills (client_order_id)",
        """
        CREATE TABLE expected_positions (
            symbol TEXT PRIMARY KEY,
            amount TEXT NOT NULL,
            updated_ms INTEGER NOT NULL
        )
        """,
        """
        CREATE TABLE syncs (
            id INTEGER PRIMARY KEY,
            taken_at_ms INTEGER NOT NULL
        )
        """,
        """
        CREATE TABLE position_snapshots (
            sync_id INTEGER NOT NULL REFERENCES syncs (id) ON DELETE CASCADE,
            symbol TEXT NOT NULL,
            amount TEXT NOT NULL,
            entry_price TEXT NOT NULL,
            stop_price TEXT,
            stop_client_order_id TEXT,
            PRIMARY KEY (sync_id, symbol)
        )
        """,
        """
        CREATE TABLE guard_decisions (
            id INTEGER PRIMARY KEY,
            at_ms INTEGER NOT NULL,
            symbol TEXT NOT NULL,
            guard TEXT NOT NULL,
            allowed INTEGER NOT NULL CHECK (allowed IN (0, 1)),
            reason TEXT NOT NULL,
            client_order_id TEXT
        )
        """,
        "CREATE INDEX guard_decisions_at ON guard_decisions (at_ms)",
        """
        CREATE TABLE kv (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL,
            updated_ms INTEGER NOT NULL
        )
        """,
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)

INTENT_COLUMNS = (
    "client_order_id, symbol, side, type, amount, price, stop_price, reduce_only, purpose, "
    "candle_time_ms, seq, state, protective_stop, parent_client_order_id, exchange_order_id, "
    "filled, average_price, attempts, sent_ms, created_ms, updated_ms, last_error"
)
# Constant text; every value is bound as a parameter.
SELECT_INTENT = "SELECT " + INTENT_COLUMNS + " FROM intents"  # noqa: S608
_PLACEHOLDERS = ", ".join("?" * 22)
INSERT_INTENT = f"INSERT INTO intents ({INTENT_COLUMNS}) VALUES ({_PLACEHOLDERS})"  # noqa: S608


# ----- row layout of the intents table -----


def dec_or_none(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value)


def dec_str(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def intent_row(i: Intent) -> tuple[Any, ...]:
    return (
        i.client_order_id,
        i.symbol,
        i.side.value,
        i.type.value,
        str(i.amount),
        dec_str(i.price),
        dec_str(i.stop_price),
        int(i.reduce_only),
        i.purpose.value,
        i.candle_time_ms,
        i.seq,
        i.state.value,
        dec_str(i.protective_stop),
        i.parent_client_order_id,
        i.exchange_order_id,
        str(i.filled),
        dec_str(i.average_price),
        i.attempts,
        i.sent_ms,
        i.created_ms,
        i.updated_ms,
        i.last_error,
    )


def row_to_intent(row: Sequence[Any]) -> Intent:
    return Intent(
        client_order_id=str(row[0]),
        symbol=str(row[1]),
        side=Side(row[2]),
        type=OrderType(row[3]),
        amount=Decimal(row[4]),
        price=dec_or_none(row[5]),
        stop_price=dec_or_none(row[6]),
        reduce_only=bool(row[7]),
        purpose=Purpose(row[8]),
        candle_time_ms=int(row[9]),
        seq=int(row[10]),
        state=IntentState(row[11]),
        protective_stop=dec_or_none(row[12]),
        parent_client_order_id=row[13],
        exchange_order_id=row[14],
        filled=Decimal(row[15]),
        average_price=dec_or_none(row[16]),
        attempts=int(row[17]),
        sent_ms=None if row[18] is None else int(row[18]),
        created_ms=int(row[19]),
        updated_ms=int(row[20]),
        last_error=row[21],
    )
