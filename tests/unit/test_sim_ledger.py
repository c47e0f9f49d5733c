"""Position, PnL and fee arithmetic of the simulated exchange, exact in Decimal."""

from __future__ import annotations

from decimal import Decimal

import pytest

from trendbotd.sim.ledger import MAKER_FEE, TAKER_FEE, apply_fill, increase_qty, reduces


@pytest.mark.parametrize(
    ("amount", "entry", "side", "qty", "price", "want_amount", "want_entry", "want_pnl"),
    [
        # open long / short from flat
        ("0", "0", "BUY", "0.5", "100", "0.5", "100", "0"),
        ("0", "0", "SELL", "0.5", "100", "-0.5", "100", "0"),
        # add: volume-weighted entry
        ("1", "100", "BUY", "1", "110", "2", "105", "0"),
        ("-1", "100", "SELL", "3", "80", "-4", "85", "0"),
        # partial close keeps the entry and realises on the closed part
        ("2", "100", "SELL", "0.5", "120", "1.5", "100", "10"),
        ("-2", "100", "BUY", "0.5", "120", "-1.5", "100", "-10"),
        # full close
        ("1.5", "100", "SELL", "1.5", "90", "0", "0", "-15"),
        # flip: closes the old side, opens the rest at the fill price
        ("1", "100", "SELL", "3", "130", "-2", "130", "30"),
        ("-1", "100", "BUY", "1.25", "70", "0.25", "70", "30"),
    ],
)
def test_apply_fill(  # noqa: PLR0917 - one parameter per table column
    amount: str,
    entry: str,
    side: str,
    qty: str,
    price: str,
    want_amount: str,
    want_entry: str,
    want_pnl: str,
) -> None:
    effect = apply_fill(
        amount=Decimal(amount),
        entry_price=Decimal(entry),
        side=side,
        qty=Decimal(qty),
        price=Decimal(price),
        fee_rate=TAKER_FEE,
    )
    assert effect.amount == Decimal(want_amount)
    assert effect.entry_price == Decimal(want_entry)
    assert effect.realized_pnl == Decimal(want_pnl)
    assert effect.fee == Decimal(qty) * Decimal(price) * Decimal("0.0005")


def test_fee_rates_are_binance_defaults() -> None:
    assert Decimal("0.0005") == TAKER_FEE
    assert Decimal("0.0002") == MAKER_FEE
    effect = apply_fill(
        amount=Decimal(0),
        entry_price=Decimal(0),
        side="BUY",
        qty=Decimal("0.003"),
        price=Decimal("30123.4"),
        fee_rate=MAKER_FEE,
    )
    assert effect.fee == Decimal("0.0180740400")


def test_reduce_helpers() -> None:
    assert reduces(Decimal(1), "SELL") and reduces(Decimal(-1), "BUY")
    assert not reduces(Decimal(0), "SELL") and not reduces(Decimal(1), "BUY")
    assert increase_qty(Decimal(1), "SELL", Decimal(3)) == Decimal(2)
    assert increase_qty(Decimal(1), "SELL", Decimal("0.5")) == Decimal(0)
    assert increase_qty(Decimal(1), "BUY", Decimal(2)) == Decimal(2)
