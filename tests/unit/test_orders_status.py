from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from support.status_keys import CLOCK_KEYS, JOURNAL_KEYS, ORDER_KEYS, POSITION_KEYS

from trendbotd.core.domain import ClockOffset, OrderType, Side
from trendbotd.core.records import (
    DailyStart,
    Intent,
    IntentState,
    IntentUpdate,
    PositionView,
    Purpose,
    TradingMode,
)
from trendbotd.errors import JournalError
from trendbotd.journal.clock_record import record_clock_offset
from trendbotd.journal.status import absent_status_dict, format_status, read_status, status_dict
from trendbotd.journal.store import open_journal

SYM = "BTC/USDT:USDT"
NOW = 1_700_000_000_000


def test_status_of_a_live_journal(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    with open_journal(path) as j:
        j.orders.add_intent(
            Intent(
                client_order_id="tb-x-e0",
                symbol=SYM,
                side=Side.BUY,
                type=OrderType.MARKET,
                amount=Decimal("0.1"),
                purpose=Purpose.ENTRY,
                candle_time_ms=0,
                seq=0,
                state=IntentState.PENDING,
                created_ms=NOW,
                updated_ms=NOW,
            )
        )
        j.orders.update_intent(
            "tb-x-e0", IntentUpdate(IntentState.UNKNOWN, last_error="timeout"), now_ms=NOW
        )
        j.account.record_sync(
            [PositionView(SYM, Decimal("0.2"), Decimal(50000), Decimal(49000), "tb-s", NOW)],
            taken_at_ms=NOW - 5000,
        )
        j.controls.set_mode(TradingMode.REDUCE_ONLY, reason="size mismatch", now_ms=NOW)
        j.controls.set_last_tick(NOW - 2000)
        j.controls.set_daily_start(DailyStart(1, Decimal(10000)), now_ms=NOW)
        j.decisions.record_guard_decision(
            at_ms=NOW, symbol=SYM, guard="daily_loss", allowed=False, reason="limit hit"
        )
        # read while the writer is still open, as `trendbotd status` does
        report = read_status(path)
    text = format_status(report, now_ms=NOW)
    assert "mode:      reduce_only - size mismatch" in text
    assert "(2s ago)" in text
    assert f"{SYM} 0.2 @ 50000  stop 49000 (tb-s)" in text
    assert "tb-x-e0 UNKNOWN entry buy market 0.1" in text
    assert "last error: timeout" in text
    assert "daily_loss: limit hit" in text
    as_json = json.loads(json.dumps(status_dict(report)))
    assert as_json["mode"] == "reduce_only"
    assert as_json["positions"][0]["stop_price"] == "49000"
    assert as_json["open_orders"][0]["state"] == "UNKNOWN"


def test_status_of_a_fresh_journal(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    open_journal(path).close()
    text = format_status(read_status(path), now_ms=NOW)
    assert "mode:      normal" in text
    assert "last tick: never" in text
    assert text.count("  none") == 2


def test_status_without_journal_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="no journal here"):
        read_status(tmp_path / "absent.db")


def test_unprotected_position_is_shouted(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    with open_journal(path) as j:
        j.account.record_sync(
            [PositionView(SYM, Decimal(1), Decimal(1), None, None, NOW)], taken_at_ms=NOW
        )
    assert "NO STOP" in format_status(read_status(path), now_ms=NOW)


# ----- status --json: the journal's part, keys pinned (tests/support/status_keys.py) -----


def _stop_intent(cid: str, amount: str, state: IntentState) -> Intent:
    return Intent(
        client_order_id=cid,
        symbol=SYM,
        side=Side.SELL,
        type=OrderType.STOP_MARKET,
        amount=Decimal(amount),
        purpose=Purpose.STOP,
        candle_time_ms=0,
        seq=1,
        state=state,
        created_ms=NOW,
        updated_ms=NOW,
        stop_price=Decimal(49000),
    )


def test_json_of_a_journal_with_a_protected_position_and_a_clock(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    with open_journal(path) as j:
        j.orders.add_intent(_stop_intent("tb-s", "0.2", IntentState.PENDING))
        j.orders.update_intent("tb-s", IntentUpdate(IntentState.ACKED), now_ms=NOW)
        j.account.record_sync(
            [PositionView(SYM, Decimal("0.2"), Decimal(50000), Decimal(49000), "tb-s", NOW)],
            taken_at_ms=NOW,
        )
        record_clock_offset(
            j,
            ClockOffset(
                offset_ms=-12,
                uncertainty_ms=4,
                measured_at_ms=NOW - 1000,
                samples=5,
                round_trip_ms=8,
            ),
            now_ms=NOW,
        )
    report = read_status(path)
    doc = json.loads(json.dumps(status_dict(report)))
    assert set(doc) == JOURNAL_KEYS
    assert doc["journal"] == {
        "path": str(path),
        "exists": True,
        "schema_version": report.schema_version,
    }
    (position,) = doc["positions"]
    assert set(position) == POSITION_KEYS
    assert position["stop_price"] == "49000"
    assert position["stop_client_order_id"] == "tb-s"
    assert position["stop_covered_amount"] == "0.2"
    (order,) = doc["open_orders"]
    assert set(order) == ORDER_KEYS
    assert (order["purpose"], order["state"], order["stop_price"]) == ("stop", "ACKED", "49000")
    assert doc["clock"] == {
        "offset_ms": -12,
        "uncertainty_ms": 4,
        "round_trip_ms": 8,
        "measured_at_ms": NOW - 1000,
        "samples": 5,
    }
    assert set(doc["clock"]) == CLOCK_KEYS
    assert doc["mode"] == "normal" and doc["mode_since_ms"] is None
    assert doc["flatten"] == {"pending": None, "last_done": None}
    text = format_status(report, now_ms=NOW)
    assert "clock:     exchange -12 ms (±4 ms, round trip 8 ms), measured " in text


def test_json_without_a_journal_has_the_same_keys(tmp_path: Path) -> None:
    doc = absent_status_dict(tmp_path / "none.db")
    assert set(doc) == JOURNAL_KEYS
    assert doc["journal"] == {"path": str(tmp_path / "none.db"), "exists": False,
                              "schema_version": None}  # fmt: skip
    assert (doc["mode"], doc["positions"], doc["clock"]) == (None, [], None)
    assert doc["flatten"] == {"pending": None, "last_done": None}


def test_a_position_without_an_own_stop_covers_nothing_known(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    with open_journal(path) as j:
        j.orders.add_intent(_stop_intent("tb-old", "0.2", IntentState.PENDING))
        j.orders.update_intent("tb-old", IntentUpdate(IntentState.CANCELED), now_ms=NOW)
        j.account.record_sync(
            [PositionView(SYM, Decimal(1), Decimal(1), None, None, NOW)], taken_at_ms=NOW
        )
    doc = status_dict(read_status(path))
    assert doc["positions"][0]["stop_covered_amount"] is None
    assert doc["clock"] is None


def test_a_stop_on_the_wrong_side_covers_nothing(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    with open_journal(path) as j:
        # a SELL stop still ACKED in the journal while the position is a short
        j.orders.add_intent(_stop_intent("tb-sell", "0.2", IntentState.PENDING))
        j.orders.update_intent("tb-sell", IntentUpdate(IntentState.ACKED), now_ms=NOW)
        short = PositionView(SYM, Decimal("-0.2"), Decimal(50000), None, None, NOW)
        j.account.record_sync([short], taken_at_ms=NOW)
    doc = status_dict(read_status(path))
    assert doc["positions"][0]["stop_covered_amount"] is None
