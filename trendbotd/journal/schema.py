"""The journal's schema as ordered migrations. Migration i brings user_version to i + 1.

Append new migrations; never edit a released one. Decimals are stored as TEXT (exact),
times as integer UTC milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from enum import Enum
from typing import Any

from trendbotd.core.domain import OrderType, Side
from trendbotd.core.records import Intent, IntentState, Purpose

APPLICATION_ID = 0x54424A31  # "TBJ1": marks the file as a trendbotd journal

_STATES = "'PENDING','SENT','ACKED','FILLED','CANCELED','REJECTED','UNKNOWN','ABANDONED'"
_NON_FINAL = "'PENDING','SENT','ACKED','UNKNOWN'"


def _kv(key: str, *, as_int: bool = False) -> str:
    """The v1 kv value of ``key`` as an SQL expression (NULL when absent)."""
    value = "CAST(value AS INTEGER)" if as_int else "value"
    return f"(SELECT {value} FROM kv WHERE key = '{key}')"  # noqa: S608 (constant keys)


def _kv_is_int(key: str) -> str:
    integer = "CAST(CAST(value AS INTEGER) AS TEXT) = value"
    return f"EXISTS (SELECT 1 FROM kv WHERE key = '{key}' AND {integer})"  # noqa: S608


_CLOCK_KEYS = ("clock_offset_ms", "clock_uncertainty_ms", "clock_measured_at_ms", "clock_samples")
_RESOLVED = "(SELECT value FROM kv WHERE key = 'mode_resolved' AND value GLOB '[0-9]*:[0-9]*')"
_DONE = "(SELECT value FROM kv WHERE key = 'operator_flatten_done')"
_REQUEST = "(SELECT value FROM kv WHERE key = 'operator_flatten_request' AND value != '')"

# v2 replaces the kv string store (v1) with typed tables. Each kv value is copied to its
# place in the migration's transaction, read the way v1's code read it (a partial clock
# record or daily start was no record), then kv is dropped: nothing else wrote to it.
_V2_TYPED_CONTROLS: tuple[str, ...] = (
    """
    CREATE TABLE controls (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        mode TEXT NOT NULL CHECK (mode IN ('normal', 'reduce_only', 'halted')),
        mode_reason TEXT NOT NULL,
        mode_since_ms INTEGER NOT NULL,
        mode_auto_since_ms INTEGER,
        mode_resolved_since_ms INTEGER,
        mode_resolved_ms INTEGER,
        last_resume_ms INTEGER,
        last_resume TEXT,
        last_tick_ms INTEGER,
        daily_start_day INTEGER,
        daily_start_equity TEXT,
        updated_ms INTEGER NOT NULL,
        CHECK ((daily_start_day IS NULL) = (daily_start_equity IS NULL)),
        CHECK ((mode_resolved_since_ms IS NULL) = (mode_resolved_ms IS NULL))
    )
    """,
    f"""
    INSERT INTO controls
    SELECT 1,
        coalesce({_kv("mode")}, 'normal'),
        coalesce({_kv("mode_reason")}, ''),
        coalesce({_kv("mode_since_ms", as_int=True)}, 0),
        {_kv("mode_auto_since_ms", as_int=True)},
        CAST(substr({_RESOLVED}, 1, instr({_RESOLVED}, ':') - 1) AS INTEGER),
        CAST(substr({_RESOLVED}, instr({_RESOLVED}, ':') + 1) AS INTEGER),
        {_kv("last_resume_ms", as_int=True)},
        {_kv("last_resume")},
        {_kv("last_tick_ms", as_int=True)},
        CASE WHEN {_kv("daily_start_equity")} IS NOT NULL
            THEN {_kv("daily_start_day", as_int=True)} END,
        CASE WHEN {_kv("daily_start_day")} IS NOT NULL THEN {_kv("daily_start_equity")} END,
        coalesce((SELECT max(updated_ms) FROM kv), 0)
    """,  # noqa: S608
    """
    CREATE TABLE decided_candles (
        symbol TEXT PRIMARY KEY,
        candle_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL
    )
    """,
    """
    INSERT INTO decided_candles
    SELECT substr(key, 16), CAST(value AS INTEGER), updated_ms FROM kv
    WHERE substr(key, 1, 15) = 'decided_candle:'
    """,
    """
    CREATE TABLE clock_offset (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        offset_ms INTEGER NOT NULL,
        uncertainty_ms INTEGER NOT NULL,
        measured_at_ms INTEGER NOT NULL,
        samples INTEGER NOT NULL,
        round_trip_ms INTEGER,
        updated_ms INTEGER NOT NULL
    )
    """,
    f"""
    INSERT INTO clock_offset
    SELECT 1, {", ".join(_kv(key, as_int=True) for key in _CLOCK_KEYS)},
        (SELECT CAST(value AS INTEGER) FROM kv WHERE key = 'clock_round_trip_ms' AND value != ''),
        (SELECT updated_ms FROM kv WHERE key = 'clock_offset_ms')
    WHERE {" AND ".join(_kv_is_int(key) for key in _CLOCK_KEYS)}
    """,  # noqa: S608
    """
    CREATE TABLE flatten_request (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        request_id TEXT NOT NULL,
        symbols TEXT,
        operator TEXT NOT NULL,
        note TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        done_request_id TEXT,
        done_outcome TEXT,
        done_ms INTEGER,
        CHECK ((done_request_id IS NULL) = (done_outcome IS NULL))
    )
    """,
    f"""
    INSERT INTO flatten_request
    SELECT 1, json_extract({_REQUEST}, '$.id'), json_extract({_REQUEST}, '$.symbols'),
        json_extract({_REQUEST}, '$.operator'), json_extract({_REQUEST}, '$.note'),
        json_extract({_REQUEST}, '$.at_ms'),
        substr({_DONE}, 1, instr({_DONE}, ':') - 1),
        trim(substr({_DONE}, instr({_DONE}, ':') + 1)),
        (SELECT updated_ms FROM kv WHERE key = 'operator_flatten_done')
    WHERE {_REQUEST} IS NOT NULL
    """,  # noqa: S608
    "DROP TABLE kv",
)


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
    # v2: the kv string store becomes typed tables, each value copied to its place
    _V2_TYPED_CONTROLS,
)

SCHEMA_VERSION = len(MIGRATIONS)


# ----- row layout of the intents table -----


def _as_is(value: Any) -> Any:
    return value


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def dec_or_none(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value)


# The intents table's columns in their stored order, each with how its value is read back.
_INTENT_FIELDS: tuple[tuple[str, Callable[[Any], Any]], ...] = (
    ("client_order_id", str),
    ("symbol", str),
    ("side", Side),
    ("type", OrderType),
    ("amount", Decimal),
    ("price", dec_or_none),
    ("stop_price", dec_or_none),
    ("reduce_only", bool),
    ("purpose", Purpose),
    ("candle_time_ms", int),
    ("seq", int),
    ("state", IntentState),
    ("protective_stop", dec_or_none),
    ("parent_client_order_id", _as_is),
    ("exchange_order_id", _as_is),
    ("filled", Decimal),
    ("average_price", dec_or_none),
    ("attempts", int),
    ("sent_ms", _int_or_none),
    ("created_ms", int),
    ("updated_ms", int),
    ("last_error", _as_is),
)
INTENT_COLUMNS = ", ".join(name for name, _ in _INTENT_FIELDS)
# Constant text; every value is bound as a parameter.
SELECT_INTENT = "SELECT " + INTENT_COLUMNS + " FROM intents"  # noqa: S608
_PLACEHOLDERS = ", ".join("?" * len(_INTENT_FIELDS))
INSERT_INTENT = f"INSERT INTO intents ({INTENT_COLUMNS}) VALUES ({_PLACEHOLDERS})"  # noqa: S608


def dec_str(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def intent_row(i: Intent) -> tuple[Any, ...]:
    return tuple(_stored(getattr(i, name)) for name, _ in _INTENT_FIELDS)


def row_to_intent(row: Sequence[Any]) -> Intent:
    return Intent(**{name: load(v) for (name, load), v in zip(_INTENT_FIELDS, row, strict=True)})


def _stored(value: Any) -> Any:
    """A field as SQLite keeps it: enums by value, decimals as exact text, flags as 0/1."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bool):
        return int(value)
    return value
