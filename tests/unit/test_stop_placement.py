"""Where an emergency stop goes: from the mark (derived from Binance's unrealized PnL), on
the losing side, on the price grid and never tighter than the distance asked for."""

from __future__ import annotations

from decimal import Decimal

from trendbotd.core.domain import Market, Position
from trendbotd.core.stop_placement import emergency_stop_price, mark_price

D = Decimal
SYMBOL = "BTC/USDT:USDT"
MARKET = Market(SYMBOL, "BTCUSDT", D("0.001"), D("0.1"), D("0.001"), D(5))


def test_mark_from_unrealized_pnl() -> None:
    # long 0.5 from 50000, upnl +500 -> mark 51000; short -0.5 from 50000, upnl +500 -> 49000
    assert mark_price(Position(SYMBOL, D("0.5"), D(50000), D(500))) == D(51000)
    assert mark_price(Position(SYMBOL, D("-0.5"), D(50000), D(500))) == D(49000)
    assert mark_price(Position(SYMBOL, D("0.5"), D(50000))) == D(50000)  # no PnL: the entry


def test_long_stop_below_and_short_stop_above_the_mark() -> None:
    long = Position(SYMBOL, D("0.5"), D(50000), D(500))
    short = Position(SYMBOL, D("-0.5"), D(50000), D(500))
    assert emergency_stop_price(long, distance=D("0.05"), market=MARKET) == D("48450.0")
    assert emergency_stop_price(short, distance=D("0.05"), market=MARKET) == D("51450.0")


def test_rounded_away_from_the_market() -> None:
    long = Position(SYMBOL, D(1), D("100.07"))
    short = Position(SYMBOL, D(-1), D("100.07"))
    # 95.0665 -> 95.0 (down); 105.0735 -> 105.1 (up)
    assert emergency_stop_price(long, distance=D("0.05"), market=MARKET) == D("95.0")
    assert emergency_stop_price(short, distance=D("0.05"), market=MARKET) == D("105.1")
