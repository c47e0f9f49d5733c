from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from trendbotd.domain import OrderType, Side
from trendbotd.errors import JournalError
from trendbotd.orders.journal import open_journal
from trendbotd.orders.records import (
    DailyStart,
    Intent,
    IntentState,
    IntentUpdate,
    PositionView,
    Purpose,
    TradingMode,
)
from trendbotd.orders.status import format_status, read_status, status_dict

SYM = "BTC/USDT:USDT"
NOW = 1_700_000_000_000


def test_status_of_a_live_journal(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    with open_journal(path) as j:
        j.add_intent(
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
        j.update_intent(
            "tb-x-e0", IntentUpdate(IntentState.UNKNOWN, last_error="timeout"), now_ms=NOW
        )
        j.record_sync(
            [PositionView(SYM, Decimal("0.2"), Decimal(50000), Decimal(49000), "tb-s", NOW)],
            taken_at_ms=NOW - 5000,
        )
        j.set_mode(TradingMode.REDUCE_ONLY, reason="size mismatch", now_ms=NOW)
        j.set_last_tick(NOW - 2000)
        j.set_daily_start(DailyStart(1, Decimal(10000)), now_ms=NOW)
        j.record_guard_decision(
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
        j.record_sync([PositionView(SYM, Decimal(1), Decimal(1), None, None, NOW)], taken_at_ms=NOW)
    assert "NO STOP" in format_status(read_status(path), now_ms=NOW)
