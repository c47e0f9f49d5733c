"""The intents table's row layout: one table of columns serves the SQL, the write and the
read, so a stored intent reads back equal, every field included."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from trendbotd.core.domain import OrderType, Side
from trendbotd.core.records import Intent, IntentState, Purpose
from trendbotd.journal.schema import INTENT_COLUMNS, intent_row, row_to_intent


def full_intent() -> Intent:
    """Every optional field set to something other than its default."""
    return Intent(
        client_order_id="tb1-btc-stop",
        symbol="BTC/USDT:USDT",
        side=Side.SELL,
        type=OrderType.STOP_MARKET,
        amount=Decimal("0.010"),
        purpose=Purpose.STOP,
        candle_time_ms=1_700_000_000_000,
        seq=3,
        state=IntentState.ACKED,
        created_ms=1_700_000_000_100,
        updated_ms=1_700_000_000_200,
        price=Decimal("41000.5"),
        stop_price=Decimal("40000.10"),
        reduce_only=True,
        protective_stop=Decimal("39999.9"),
        parent_client_order_id="tb1-btc-entry",
        exchange_order_id="1000001",
        filled=Decimal("0.005"),
        average_price=Decimal("40001.25"),
        attempts=2,
        sent_ms=1_700_000_000_150,
        last_error="-2021 would trigger",
    )


def test_columns_name_every_intent_field() -> None:
    names = INTENT_COLUMNS.split(", ")
    assert sorted(names) == sorted(f.name for f in dataclasses.fields(Intent))


def test_a_full_intent_reads_back_equal() -> None:
    intent = full_intent()
    row = intent_row(intent)
    assert row[INTENT_COLUMNS.split(", ").index("reduce_only")] == 1
    assert row[INTENT_COLUMNS.split(", ").index("amount")] == "0.010"
    assert row_to_intent(row) == intent


def test_a_minimal_intent_keeps_its_nones() -> None:
    intent = dataclasses.replace(
        full_intent(),
        price=None,
        stop_price=None,
        protective_stop=None,
        parent_client_order_id=None,
        exchange_order_id=None,
        average_price=None,
        sent_ms=None,
        last_error=None,
    )
    assert row_to_intent(intent_row(intent)) == intent
