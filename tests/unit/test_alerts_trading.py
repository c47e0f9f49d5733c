"""The pure decisions behind mode-change and exchange-outage alerts."""

from __future__ import annotations

from decimal import Decimal

import pytest

from trendbotd.alerts.events import CATALOGUE
from trendbotd.alerts.trading import Outage, mode_events
from trendbotd.core.domain import OrderType, Position, Side
from trendbotd.core.records import Intent, IntentState, Purpose, TradingMode
from trendbotd.trading.positions import close_pnl

N, R, H = TradingMode.NORMAL, TradingMode.REDUCE_ONLY, TradingMode.HALTED


@pytest.mark.parametrize(
    ("before", "after", "events"),
    [
        (N, N, ()),
        (R, R, ()),
        (N, R, ("mode.reduce_only_entered",)),
        (R, N, ("mode.reduce_only_left",)),
        (N, H, ("mode.halted_entered",)),
        (H, N, ("mode.halted_left",)),
        (R, H, ("mode.reduce_only_left", "mode.halted_entered")),
        (H, R, ("mode.halted_left", "mode.reduce_only_entered")),
    ],
)
def test_mode_events(before: TradingMode, after: TradingMode, events: tuple[str, ...]) -> None:
    assert mode_events(before, after) == events
    assert all(e in CATALOGUE for e in events)


def test_outage_alerts_once_after_the_threshold_and_back_once() -> None:
    outage = Outage(alert_after_s=60)
    assert not outage.failed(100.0)
    assert not outage.failed(159.0)
    assert outage.failed(160.0)
    assert not outage.failed(200.0)  # once per outage
    assert outage.down_for(200.0) == 100.0
    assert outage.succeeded(210.0) == 110.0
    assert outage.succeeded(220.0) is None  # already back


def test_a_blip_shorter_than_the_threshold_alerts_nobody() -> None:
    outage = Outage(alert_after_s=60)
    assert not outage.failed(0.0)
    assert outage.succeeded(30.0) is None
    assert not outage.failed(40.0)  # a new outage starts its own count
    assert not outage.failed(99.0)
    assert outage.failed(100.0)


def _close(filled: str, price: str | None) -> Intent:
    return Intent(
        "cid", "BTC/USDT:USDT", Side.SELL, OrderType.MARKET, Decimal(filled), Purpose.EXIT,
        0, 0, IntentState.FILLED, 0, 0, filled=Decimal(filled),
        average_price=None if price is None else Decimal(price),
    )  # fmt: skip


def test_close_pnl_long_short_and_unknown() -> None:
    long = Position("BTC/USDT:USDT", Decimal("0.010"), Decimal(50000))
    short = Position("BTC/USDT:USDT", Decimal("-0.010"), Decimal(50000))
    assert close_pnl(long, [_close("0.010", "51000")]) == "10.000"
    assert close_pnl(short, [_close("0.010", "51000")]) == "-10.000"
    assert close_pnl(long, [_close("0.010", None)]) is None
    assert close_pnl(None, [_close("0.010", "51000")]) is None
