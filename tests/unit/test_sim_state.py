"""Matching, triggers and account rules of the simulated exchange, without HTTP."""

from __future__ import annotations

from decimal import Decimal

import pytest

from trendbotd.core.clock import ManualClock
from trendbotd.core.domain import OrderStatus
from trendbotd.sim import SimConfig, SimExchange
from trendbotd.sim.errors import SimError
from trendbotd.sim.market import ANCHOR_MS

SYMBOL = "BTC/USDT:USDT"
H = 3_600_000
T0 = ANCHOR_MS + 500 * H


def make(clock: ManualClock, **kw: object) -> SimExchange:
    return SimExchange(SimConfig(symbols=(SYMBOL,), seed=11, clock=clock, **kw))  # type: ignore[arg-type]


def priced_at_30000(clock: ManualClock, **kw: object) -> SimExchange:
    """A sim whose last price is pinned at 30000, for order tests."""
    sim = make(clock, **kw)
    sim.account.set_price(SYMBOL, Decimal(30000))
    return sim


def test_order_right_after_a_close_fills_at_the_next_open() -> None:
    clock = ManualClock(T0 + 1)
    sim = make(clock)
    bar = sim.state.tapes["BTCUSDT"].source.bar(T0 // H)
    order = sim.account.place_order(SYMBOL, "buy", "market", Decimal("0.01"), client_order_id="o")
    assert order.status is OrderStatus.FILLED
    assert order.average_price == sim.state.specs["BTCUSDT"].round_price(bar.open)


def test_stop_triggers_on_the_path_at_its_trigger_price() -> None:
    clock = ManualClock(T0 + 1)
    sim = make(clock, regime="range")
    sim.account.place_order(SYMBOL, "buy", "market", Decimal("0.01"))
    entry = sim.account.position(SYMBOL).entry_price
    trigger = (entry * Decimal("0.99")).quantize(Decimal("0.1"))
    sim.account.place_order(
        SYMBOL,
        "sell",
        "stop_market",
        Decimal("0.01"),
        stop_price=trigger,
        client_order_id="sl",
        reduce_only=True,
    )
    source = sim.state.tapes["BTCUSDT"].source
    for hour in range(1, 2000):
        clock.advance(H)
        sim.matching.sync()
        if not sim.account.open_orders(SYMBOL):
            break
        # still open: the bar just completed never traded down to the trigger
        assert source.bar(T0 // H + hour - 1).low > float(trigger)
    algo = sim.account.order(SYMBOL, "sl", conditional=True)
    assert algo.status is OrderStatus.FILLED
    actual = sim.state.algos[int(algo.exchange_order_id)]
    fill = sim.state.orders[actual.actual_order_id or 0]
    assert fill.avg_price == trigger
    assert fill.orig_type == "STOP_MARKET"
    assert sim.account.positions() == []
    assert source.bar((actual.trigger_ms - actual.trigger_ms % H) // H).low <= float(trigger)


def test_limit_lifecycle_partial_fill_and_reduce_only_expiry() -> None:
    clock = ManualClock(T0 + 1)
    sim = priced_at_30000(clock)
    sim.account.place_order(
        SYMBOL, "buy", "limit", Decimal("0.02"), Decimal(29000), client_order_id="l"
    )
    sim.account.fill_order(SYMBOL, "l", Decimal("0.01"), Decimal(29000))
    wire = sim.desk.find_order("BTCUSDT", order_id=None, client_id="l")
    assert wire is not None
    assert wire.wire()["status"] == "PARTIALLY_FILLED"
    assert wire.wire()["executedQty"] == "0.010"
    # a reduce-only take-profit above, then the position is closed by a market order
    sim.account.place_order(
        SYMBOL,
        "sell",
        "limit",
        Decimal("0.01"),
        Decimal(31000),
        client_order_id="tp",
        reduce_only=True,
    )
    sim.account.place_order(SYMBOL, "sell", "market", Decimal("0.01"), reduce_only=True)
    tp = sim.account.order(SYMBOL, "tp")
    assert tp.status is OrderStatus.EXPIRED
    assert sim.account.order(SYMBOL, "l").status is OrderStatus.OPEN


def test_time_in_force_variants() -> None:
    sim = priced_at_30000(ManualClock(T0 + 1))
    post_only = sim.account.place_order(
        SYMBOL, "buy", "limit", Decimal("0.01"), Decimal(30100), time_in_force="GTX"
    )
    assert post_only.status is OrderStatus.EXPIRED
    ioc = sim.account.place_order(
        SYMBOL, "buy", "limit", Decimal("0.01"), Decimal(29000), time_in_force="IOC"
    )
    assert ioc.status is OrderStatus.EXPIRED
    taker = sim.account.place_order(SYMBOL, "buy", "limit", Decimal("0.01"), Decimal(30100))
    assert taker.status is OrderStatus.FILLED
    assert taker.average_price == Decimal(30000)  # marketable limit takes the book price


def test_open_orders_use_margin() -> None:
    sim = priced_at_30000(ManualClock(T0 + 1), start_balance=Decimal(1000))
    sim.account.place_order(
        SYMBOL, "buy", "limit", Decimal("0.5"), Decimal(20000)
    )  # 10000/20 = 500
    assert sim.account.balance().free == Decimal(500)
    with pytest.raises(SimError) as err:
        sim.account.place_order(SYMBOL, "buy", "limit", Decimal("0.5"), Decimal(20000))
    assert err.value.code == -2019


def test_canceled_orders_without_fills_are_forgotten_after_three_days() -> None:
    clock = ManualClock(T0 + 1)
    sim = priced_at_30000(clock)
    sim.account.place_order(
        SYMBOL, "buy", "limit", Decimal("0.01"), Decimal(20000), client_order_id="x"
    )
    found = sim.desk.find_order("BTCUSDT", order_id=None, client_id="x")
    assert found is not None
    sim.desk.cancel(found)
    clock.advance(2 * 86_400_000)
    assert sim.account.order(SYMBOL, "x").status is OrderStatus.CANCELED
    clock.advance(2 * 86_400_000)
    with pytest.raises(SimError) as err:
        sim.account.order(SYMBOL, "x")
    assert err.value.code == -2013


def test_set_position_and_unrealised_pnl() -> None:
    sim = make(ManualClock(T0 + 1))
    sim.account.set_price(SYMBOL, Decimal(31000))
    sim.account.set_position(SYMBOL, Decimal("-0.5"), Decimal(30000))
    position = sim.account.position(SYMBOL)
    assert position.unrealized_pnl == Decimal(-500)
    assert sim.account.balance().total == Decimal(9500)
