"""Position sizing: risk budget, caps, exchange precision, and the reasons for a skip."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trendbotd.core.domain import Market
from trendbotd.core.sizing import (
    CAP_LEVERAGE,
    CAP_MAX_NOTIONAL,
    SizingResult,
    round_stop,
    round_to_step,
    size_position,
)

D = Decimal
BTC = Market(
    symbol="BTC/USDT:USDT",
    exchange_symbol="BTCUSDT",
    amount_step=D("0.001"),
    price_step=D("0.1"),
    min_amount=D("0.001"),
    min_notional=D("100"),
)
SOL = Market(
    symbol="SOL/USDT:USDT",
    exchange_symbol="SOLUSDT",
    amount_step=D("1"),
    price_step=D("0.01"),
    min_amount=D("1"),
    min_notional=D("5"),
)


def size(
    *,
    equity: str = "10000",
    entry: str = "30000",
    stop: str = "29400",
    risk: float = 0.01,
    leverage: int = 5,
    max_notional: str = "1000000",
    market: Market = BTC,
) -> SizingResult:
    return size_position(
        equity=D(equity),
        entry_price=D(entry),
        stop_price=D(stop),
        risk_per_trade=risk,
        max_leverage=leverage,
        max_notional=D(max_notional),
        market=market,
    )


def test_risks_the_budget_given_the_stop_distance() -> None:
    r = size()  # 1% of 10000 = 100 over a 600 stop distance = 0.1666.. BTC, rounded down
    assert r.ok and r.skip_reason is None and r.capped_by is None
    assert r.amount == D("0.166")
    assert r.notional == D("4980.0")
    assert r.risk == D("99.6") <= D(100)
    assert (str(r.entry_price), str(r.stop_price)) == ("30000.0", "29400.0")


def test_short_when_the_stop_is_above_the_entry() -> None:
    r = size(stop="30600")
    assert r.ok and r.amount == D("0.166") and r.stop_price == D("30600")


def test_prices_are_put_on_the_grid_stop_away_from_the_entry() -> None:
    long = size(entry="30000.04", stop="29400.06")
    assert long.entry_price == D("30000.0") and long.stop_price == D("29400.0")
    short = size(entry="30000.06", stop="30600.01")
    assert short.entry_price == D("30000.1") and short.stop_price == D("30600.1")
    # the distance used is the one the exchange will see: 600 exactly, so 0.166 again
    assert long.amount == D("0.166") and long.risk == D("0.166") * D("600.0")


def test_amount_is_rounded_down_to_the_step() -> None:
    r = size(equity="10000", entry="100", stop="97", market=SOL)  # 100 / 3 = 33.33 SOL
    assert r.amount == D("33") and r.amount % SOL.amount_step == 0


def test_tiny_balance_is_skipped_with_a_reason() -> None:
    r = size(equity="50")  # 0.5 USDT of risk buys 0.00083 BTC: below one step
    assert not r.ok and r.amount == 0
    assert r.skip_reason is not None and "below the minimum 0.001" in r.skip_reason


def test_huge_stop_gives_a_position_too_small_to_trade() -> None:
    r = size(stop="1")  # 100 / 29999 = 0.0033 BTC -> 0.003 BTC = 90 USDT < 100 minimum
    assert not r.ok and r.skip_reason is not None and "notional 90.0000 below" in r.skip_reason


def test_min_notional_skip() -> None:
    r = size(equity="1000", stop="28000")  # 10 / 2000 = 0.005 BTC = 150 USDT: fine
    assert r.ok and r.notional == D("150.0000")
    r = size(equity="500", stop="28000")  # 0.0025 -> 0.002 BTC = 60 USDT < 100
    assert not r.ok and "notional" in (r.skip_reason or "")


def test_leverage_cap() -> None:
    # 100 / 10 = 10 BTC; 3x of 95% of 10000 allows 0.95 BTC (margin left for the fee)
    r = size(stop="29990", leverage=3)
    assert r.ok and r.capped_by == CAP_LEVERAGE
    assert r.amount == D("0.950") and r.notional <= D(28500)


def test_max_notional_cap_wins_when_lower() -> None:
    r = size(stop="29990", leverage=3, max_notional="15000")
    assert r.ok and r.capped_by == CAP_MAX_NOTIONAL and r.amount == D("0.500")
    odd = size(stop="29990", leverage=3, max_notional="15001")  # 0.50003 -> down to 0.5
    assert odd.amount == D("0.500") and odd.notional <= D(15001)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"stop": "30000"}, "equals entry"),
        ({"stop": "0"}, "stop price 0 is not positive"),
        ({"stop": "-5"}, "not positive"),
        ({"entry": "0"}, "entry price 0"),
        ({"equity": "0"}, "equity 0 is not positive"),
        ({"equity": "-10"}, "equity -10"),
        ({"equity": "NaN"}, "equity NaN"),
        ({"risk": 0.0}, "risk_per_trade 0.0"),
        ({"risk": 1.5}, "risk_per_trade 1.5"),
        ({"leverage": 0}, "max_leverage 0"),
        ({"max_notional": "0"}, "max_notional 0"),
        ({"entry": "30000.04", "stop": "30000.01"}, "not on the low side"),
        ({"entry": "0.04", "stop": "0.01"}, "rounds to zero"),
    ],
)
def test_invalid_inputs_skip_with_a_reason(kwargs: dict[str, object], reason: str) -> None:
    r = size(**kwargs)  # type: ignore[arg-type]
    assert not r.ok and r.amount == 0
    assert r.skip_reason is not None and reason in r.skip_reason


def test_round_helpers() -> None:
    assert round_stop(29400.06, long=True, market=BTC) == D("29400.0")
    assert round_stop(29400.06, long=False, market=BTC) == D("29400.1")
    assert round_stop(D("29400.1"), long=False, market=BTC) == D("29400.1")  # on grid: kept
    assert round_to_step(D("0.0019"), D("0.001"), rounding="ROUND_FLOOR") == D("0.001")
    with pytest.raises(ValueError, match="step"):
        round_to_step(D(1), D(0), rounding="ROUND_FLOOR")


@settings(max_examples=300, deadline=None)
@given(
    equity=st.decimals(D("1"), D("1000000"), places=2),
    entry=st.decimals(D("0.5"), D("100000"), places=3),
    stop_fraction=st.floats(0.001, 0.5),
    long=st.booleans(),
    risk=st.floats(0.001, 0.1),
    leverage=st.integers(1, 20),
    max_notional=st.decimals(D("10"), D("1000000"), places=0),
)
def test_never_exceeds_the_budget_or_a_cap(
    *,
    equity: Decimal,
    entry: Decimal,
    stop_fraction: float,
    long: bool,
    risk: float,
    leverage: int,
    max_notional: Decimal,
) -> None:
    offset = entry * Decimal(repr(stop_fraction))
    stop = entry - offset if long else entry + offset
    r = size_position(
        equity=equity,
        entry_price=entry,
        stop_price=stop,
        risk_per_trade=risk,
        max_leverage=leverage,
        max_notional=max_notional,
        market=BTC,
    )
    if not r.ok:
        assert r.amount == 0 and r.skip_reason
        return
    assert r.amount % BTC.amount_step == 0 and r.amount >= BTC.min_amount
    assert r.notional >= BTC.min_notional
    assert r.risk <= equity * Decimal(repr(risk))
    assert r.notional <= equity * D("0.95") * leverage
    assert r.notional <= max_notional
    assert (r.stop_price < r.entry_price) == long
    assert r.stop_price % BTC.price_step == 0 and r.entry_price % BTC.price_step == 0
