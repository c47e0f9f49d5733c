"""A journal written by the schema v1 release (tests/data/journal_v1.db, made by
tests/data/make_old_journal.py with that release's code) opens with the current code:
the migration moves every value of the old key-value table to its typed place, and
everything reads back as it did, and as the same history written today reads."""

from __future__ import annotations

import importlib.util
import logging
import shutil
import sqlite3
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from trendbotd.core.domain import ClockOffset
from trendbotd.core.records import DailyStart, IntentState, ModeState, Purpose, TradingMode
from trendbotd.errors import JournalError
from trendbotd.journal.clock_record import journalled_clock_offset
from trendbotd.journal.operator_requests import (
    FlattenRequest,
    last_flatten_outcome,
    pending_flatten,
)
from trendbotd.journal.schema import MIGRATIONS, SCHEMA_VERSION
from trendbotd.journal.sqlite_db import connect_db
from trendbotd.journal.status import collect, format_status, status_dict
from trendbotd.journal.store import Journal, open_journal
from trendbotd.trading.sync_mode import resolved_since_ms, shown_reason

DATA = Path(__file__).resolve().parent.parent / "data"
OLD = DATA / "journal_v1.db"
BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
T0 = 1_700_000_000_000
HOUR = 3_600_000
CIDS = ("e-filled", "s-acked", "e-canceled", "x-unknown", "e-pending")


def _maker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_old_journal", DATA / "make_old_journal.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def old_copy(tmp_path: Path) -> Path:
    path = tmp_path / "old.db"
    shutil.copyfile(OLD, path)
    return path


def _tables(path: Path) -> dict[str, str]:
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))


def _view(j: Journal) -> dict[str, Any]:
    """Everything the typed API reads back."""
    mode = j.controls.mode()
    clock = journalled_clock_offset(j)
    return {
        "intents": [j.orders.get_intent(cid) for cid in CIDS],
        "fills": j.orders.fills(),
        "counts": j.orders.intent_counts(),
        "expected": j.account.expected_positions(),
        "sync": j.account.last_sync(),
        "decisions": j.decisions.guard_decisions(),
        "mode": mode,
        "auto_since": j.controls.mode_auto_since_ms(),
        "resolved": resolved_since_ms(j, mode),
        "shown": shown_reason(j, mode),
        "resume": (j.controls.last_resume_ms(), j.controls.last_resume_reason()),
        "tick": j.controls.last_tick_ms(),
        "daily": j.controls.daily_start(),
        "decided": [j.controls.decided_candle(s) for s in (BTC, ETH, "XRP/USDT:USDT")],
        "clock": (clock, None if clock is None else clock.round_trip_ms),
        "flatten": (pending_flatten(j), last_flatten_outcome(j)),
        "status": {**status_dict(collect(j)), "journal": None},
        "status_text": format_status(collect(j), now_ms=T0 + 200).replace(str(j.path), "-"),
    }


def test_every_old_value_reads_back_through_the_typed_api(old_copy: Path) -> None:
    assert "kv" in _tables(old_copy)
    with open_journal(old_copy) as j:
        assert j.schema_version == SCHEMA_VERSION
        view = _view(j)
    assert "kv" not in _tables(old_copy)  # every value moved to its typed place
    assert view["mode"] == ModeState(
        TradingMode.REDUCE_ONLY, "ETH/USDT:USDT opened by hand", T0 + 50
    )
    assert view["auto_since"] == T0 + 50  # entered by a sync
    assert view["resolved"] == T0 + 60
    assert view["shown"].startswith("no longer holds: ETH/USDT:USDT opened by hand")
    assert view["resume"] == (T0 + 40, "resumed by carol: checked")
    assert view["tick"] == T0 + 100
    assert view["daily"] == DailyStart(19675, Decimal("10234.5678"))
    assert view["decided"] == [T0 - HOUR, T0 - 2 * HOUR, None]
    assert view["clock"] == (ClockOffset(-37, 12, T0 + 90, 5), 24)
    pending = FlattenRequest(f"{T0 + 30}-42", (BTC, ETH), "bob", "exchange news", T0 + 30)
    assert view["flatten"] == (pending, "done: BTC/USDT:USDT flat")
    states = {i.client_order_id: i.state for i in view["intents"]}
    assert states == dict(
        zip(CIDS, ("FILLED", "ACKED", "CANCELED", "UNKNOWN", "PENDING"), strict=True)
    )
    assert view["counts"][(Purpose.ENTRY, IntentState.FILLED)] == 1
    assert [(cid, amount) for cid, _, amount, _ in view["fills"]] == [
        ("e-filled", Decimal("0.010")),
        ("e-canceled", Decimal("0.004")),
    ]
    assert view["expected"] == {BTC: Decimal("0.014"), ETH: Decimal("-0.5")}
    assert view["sync"] is not None and view["sync"][0] == T0 + 10
    assert len(view["decisions"]) == 2


def test_the_migrated_journal_reads_as_the_same_history_written_today(
    old_copy: Path, tmp_path: Path
) -> None:
    with open_journal(tmp_path / "new.db") as j:
        _maker().write_all(j)
        today = _view(j)
    with open_journal(old_copy) as j:
        migrated = _view(j)
    assert migrated == today  # status and status --json included


def test_read_only_open_of_an_old_journal_asks_for_the_daemon(old_copy: Path) -> None:
    before = old_copy.read_bytes()
    with pytest.raises(JournalError, match="start the daemon once to migrate it"):
        open_journal(old_copy, read_only=True)
    assert old_copy.read_bytes() == before


def test_a_second_open_migrates_nothing(old_copy: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="trendbotd.journal")
    with open_journal(old_copy) as j:
        first = _view(j)
    tables = _tables(old_copy)
    assert "journal.migrated" in caplog.text
    caplog.clear()
    with open_journal(old_copy) as j:
        assert _view(j) == first
    assert _tables(old_copy) == tables
    assert "journal.migrated" not in caplog.text
    with open_journal(old_copy, read_only=True) as j:  # migrated: readable read-only too
        assert j.controls.mode() == first["mode"]


def test_partial_old_records_stay_no_record(tmp_path: Path) -> None:
    """v1 read a clock record or a daily start with a value missing as none at all, and a
    cleared resolved mark as not resolved: the migration keeps that reading."""
    path = tmp_path / "partial.db"
    connect_db(path, migrations=MIGRATIONS[:1]).close()
    values = {
        "mode": "halted",
        "mode_since_ms": "7",
        "mode_auto_since_ms": "7",
        "mode_resolved": "",
        "daily_start_day": "19675",
        "clock_offset_ms": "-3",
        "clock_uncertainty_ms": "2",
        "clock_samples": "4",
    }
    with sqlite3.connect(path) as conn:
        conn.executemany("INSERT INTO kv VALUES (?, ?, 1)", values.items())
    with open_journal(path) as j:
        assert j.controls.mode() == ModeState(TradingMode.HALTED, "", 7)
        assert j.controls.mode_auto_since_ms() == 7
        assert j.controls.mode_resolved() is None
        assert j.controls.daily_start() is None
        assert journalled_clock_offset(j) is None
        assert (j.controls.last_resume_ms(), j.controls.last_tick_ms()) == (None, None)
        assert (pending_flatten(j), last_flatten_outcome(j)) == (None, None)
