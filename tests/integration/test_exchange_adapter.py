"""The ccxt adapter against the simulated exchange: real ccxt, real HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from exchange_helpers import PRICE, SYMBOL, adapter, limit_buy, market, requests_to, stop

from trendbotd.adapters.ccxt_exchange import CcxtExchange
from trendbotd.core.clock import ManualClock
from trendbotd.core.domain import AccountMode, OrderStatus, OrderType, Side
from trendbotd.errors import (
    ClockNotSyncedError,
    ConfigError,
    OrderNotFoundError,
    UnsupportedAccountModeError,
)
from trendbotd.sim import SimConfig, SimExchange

ETH = "ETH/USDT:USDT"


@pytest.fixture
def sim() -> Iterator[SimExchange]:
    with SimExchange(SimConfig(symbols=(SYMBOL, ETH), seed=7)) as s:
        s.account.set_price(SYMBOL, PRICE)
        s.account.set_price(ETH, Decimal(2000))
        yield s


@pytest.fixture
def ex(sim: SimExchange) -> Iterator[CcxtExchange]:
    exchange = adapter(sim)
    exchange.measure_clock()
    exchange.load_markets([SYMBOL, ETH])
    yield exchange
    exchange.close()


def test_every_api_url_points_at_the_base_url_with_its_path(sim: SimExchange) -> None:
    for demo in (False, True):
        exchange = adapter(sim, demo=demo)
        urls = exchange.api_urls
        assert len(urls) >= (10 if demo else 20)  # the demo table is smaller (no sapi)
        assert all(u.startswith(sim.base_url + "/") for u in urls.values()), urls
        assert urls["fapiPrivateV3"] == sim.base_url + "/fapi/v3"
        if not demo:
            assert urls["sapi"] == sim.base_url + "/sapi/v1"


def test_unknown_exchange_or_symbol_is_a_config_error(sim: SimExchange, ex: CcxtExchange) -> None:
    with pytest.raises(ConfigError, match="no such ccxt exchange"):
        adapter(sim, exchange_id="nosuchexchange")
    with pytest.raises(ConfigError, match="not listed"):
        ex.load_markets(["DOGE/USDT:USDT"])


def test_markets_come_from_exchange_info_as_decimals(ex: CcxtExchange) -> None:
    markets = ex.load_markets([SYMBOL, ETH])
    btc = markets[SYMBOL]
    assert (btc.exchange_symbol, btc.amount_step, btc.price_step) == (
        "BTCUSDT",
        Decimal("0.001"),
        Decimal("0.10"),
    )
    assert (btc.min_amount, btc.min_notional) == (Decimal("0.001"), Decimal(100))
    assert markets[ETH].min_notional == Decimal(20)


def test_balance_positions_and_open_orders_equal_the_sims_state(
    sim: SimExchange, ex: CcxtExchange
) -> None:
    sim.account.set_position(SYMBOL, Decimal("0.25"), Decimal(29000))
    sim.account.set_position(ETH, Decimal(-3), Decimal(2100))
    ex.create_order(limit_buy("tb-lim-1"))
    ex.create_order(stop("tb-stop-1", amount="0.25"))
    assert ex.fetch_balance() == sim.account.balance()
    assert ex.fetch_balance().total == Decimal(10000) + Decimal(250) + Decimal(300)
    positions = {p.symbol: p for p in ex.fetch_positions([SYMBOL, ETH])}
    expected = {p.symbol: p for p in sim.account.positions()}
    assert positions.keys() == expected.keys() == {SYMBOL, ETH}
    for symbol, p in positions.items():
        e = expected[symbol]
        assert (p.amount, p.entry_price, p.unrealized_pnl) == (
            e.amount,
            e.entry_price,
            e.unrealized_pnl,
        )
    orders = ex.fetch_open_orders([SYMBOL, ETH])
    assert {o.client_order_id: o.conditional for o in orders} == {
        "tb-lim-1": False,
        "tb-stop-1": True,
    }
    assert sorted(orders, key=lambda o: o.client_order_id) == sorted(
        sim.account.open_orders(), key=lambda o: o.client_order_id
    )
    algo = next(o for o in orders if o.conditional)
    assert (algo.type, algo.stop_price, algo.reduce_only) == (
        OrderType.STOP_MARKET,
        Decimal(28000),
        True,
    )


def test_flat_account_gives_no_positions_and_no_orders(ex: CcxtExchange) -> None:
    assert ex.fetch_positions([SYMBOL, ETH]) == []
    assert ex.fetch_open_orders([SYMBOL]) == []


def test_market_order_fills_and_is_found_by_client_id(sim: SimExchange, ex: CcxtExchange) -> None:
    order = ex.create_order(market("tb-mkt-1"))
    assert (order.status, order.filled, order.average_price) == (
        OrderStatus.FILLED,
        Decimal("0.01"),
        PRICE,
    )
    sent = requests_to(sim, "POST", "/fapi/v1/order")
    assert len(sent) == 1
    assert sent[0].params["newClientOrderId"] == "tb-mkt-1"  # our id, no broker prefix
    assert sent[0].params["quantity"] == "0.01"
    found = ex.fetch_order_by_client_id(SYMBOL, "tb-mkt-1", conditional=False)
    assert found == order
    assert sim.account.position(SYMBOL).amount == Decimal("0.01")


def test_absent_order_is_none_only_because_the_exchange_said_so(ex: CcxtExchange) -> None:
    assert ex.fetch_order_by_client_id(SYMBOL, "tb-never", conditional=False) is None
    assert ex.fetch_order_by_client_id(SYMBOL, "tb-never", conditional=True) is None


def test_cancel_plain_and_conditional_by_client_id(sim: SimExchange, ex: CcxtExchange) -> None:
    sim.account.set_position(SYMBOL, Decimal("0.01"), PRICE)
    ex.create_order(limit_buy("tb-lim-2"))
    ex.create_order(stop("tb-stop-2"))
    plain = ex.cancel_order_by_client_id(SYMBOL, "tb-lim-2", conditional=False)
    algo = ex.cancel_order_by_client_id(SYMBOL, "tb-stop-2", conditional=True)
    assert (plain.status, plain.conditional) == (OrderStatus.CANCELED, False)
    assert (algo.status, algo.conditional, algo.stop_price) == (
        OrderStatus.CANCELED,
        True,
        Decimal(28000),
    )
    assert sim.account.open_orders() == []
    assert ex.fetch_order_by_client_id(SYMBOL, "tb-stop-2", conditional=True) == sim.account.order(
        SYMBOL, "tb-stop-2", conditional=True
    )
    with pytest.raises(OrderNotFoundError):
        ex.cancel_order_by_client_id(SYMBOL, "tb-lim-2", conditional=False)
    with pytest.raises(OrderNotFoundError):
        ex.cancel_order_by_client_id(SYMBOL, "tb-nothing", conditional=True)


def test_triggered_stop_reads_as_filled(sim: SimExchange, ex: CcxtExchange) -> None:
    ex.create_order(market("tb-entry"))
    ex.create_order(stop("tb-sl", trigger="29000"))
    sim.account.set_price(SYMBOL, Decimal(28500))
    order = ex.fetch_order_by_client_id(SYMBOL, "tb-sl", conditional=True)
    assert order is not None
    assert (order.status, order.average_price) == (OrderStatus.FILLED, Decimal(29000))
    assert ex.fetch_positions([SYMBOL]) == []


def test_account_mode(sim: SimExchange, ex: CcxtExchange) -> None:
    assert ex.fetch_account_mode() is AccountMode.ONE_WAY
    sim.state.set_hedge_mode(True)
    assert ex.fetch_account_mode() is AccountMode.HEDGE
    sim.state.set_hedge_mode(False)
    sim.state.set_multi_assets(True)
    with pytest.raises(UnsupportedAccountModeError, match="multi-assets"):
        ex.fetch_account_mode()


def test_candles_and_leverage(sim: SimExchange, ex: CcxtExchange) -> None:
    candles = ex.fetch_candles(SYMBOL, timeframe="1h", since_ms=None, limit=5)
    assert len(candles) == 5
    assert [c.open_time_ms for c in candles] == sorted(c.open_time_ms for c in candles)
    assert all(c.low <= min(c.open, c.close) and c.high >= max(c.open, c.close) for c in candles)
    ex.set_leverage(SYMBOL, 3)
    assert sim.state.books["BTCUSDT"].leverage == 3


# ----- clock -----


def test_clock_skew_no_order_before_the_offset_is_measured_accepted_after(
    sim: SimExchange,
) -> None:
    sim.set_clock_skew_ms(20_000)
    exchange = adapter(sim, max_clock_offset_ms=30_000)  # a bound wide enough for the demo
    with pytest.raises(ClockNotSyncedError, match="not measured"):
        exchange.create_order(market("tb-skew-1"))
    assert requests_to(sim, "POST", "/fapi/v1/order") == []  # refused before sending
    offset = exchange.measure_clock()
    assert abs(offset.offset_ms - 20_000) <= 50
    assert offset.samples == 5
    order = exchange.create_order(market("tb-skew-1"))
    assert order.status is OrderStatus.FILLED
    (post,) = requests_to(sim, "POST", "/fapi/v1/order")
    assert post.accepted
    # the request was stamped in the exchange's time, not ours
    assert abs(int(post.params["timestamp"]) - post.at_ms) < 1000


def test_offset_beyond_the_bound_refuses_orders(sim: SimExchange) -> None:
    sim.set_clock_skew_ms(20_000)
    exchange = adapter(sim)  # max_clock_offset_ms=500
    exchange.measure_clock()
    with pytest.raises(ClockNotSyncedError, match=r"(19|20)\d\d\d ms exceeds the bound of 500"):
        exchange.create_order(market("tb-skew-2"))
    assert requests_to(sim, "POST", "/fapi/v1/order") == []


def test_reads_heal_themselves_after_a_skew_rejection(sim: SimExchange) -> None:
    exchange = adapter(sim)
    exchange.measure_clock()
    exchange.load_markets([SYMBOL])
    sim.set_clock_skew_ms(-20_000)  # the exchange jumps back: our stamps are now ahead
    sim.clear_requests()
    assert exchange.fetch_balance().total == Decimal(10000)
    paths = [(r.path, r.accepted) for r in sim.requests]
    assert paths[0] == ("/fapi/v3/account", False)  # -1021
    assert paths[1:6] == [("/fapi/v1/time", True)] * 5  # re-measured
    assert paths[-1] == ("/fapi/v3/account", True)
    offset = exchange.clock_offset
    assert offset is not None
    assert abs(offset.offset_ms + 20_000) <= 50


def test_a_stale_offset_is_measured_again_before_an_order() -> None:
    clock = ManualClock(1_800_000_000_000)
    with SimExchange(SimConfig(symbols=(SYMBOL,), clock=clock)) as sim:
        sim.account.set_price(SYMBOL, PRICE)
        exchange = adapter(sim, clock=clock, clock_resync_s=600)
        exchange.measure_clock()
        exchange.create_order(market("tb-fresh"))
        assert len(requests_to(sim, "GET", "/fapi/v1/time")) == 5
        clock.advance(601_000)
        exchange.create_order(market("tb-stale"))
        assert len(requests_to(sim, "GET", "/fapi/v1/time")) == 10
        offset = exchange.clock_offset
        assert offset is not None
        assert offset.measured_at_ms == clock.now_ms()
        assert (offset.offset_ms, offset.uncertainty_ms) == (0, 0)


def test_an_aging_offset_is_refreshed_between_ticks_not_in_front_of_an_order() -> None:
    clock = ManualClock(1_800_000_000_000)
    with SimExchange(SimConfig(symbols=(SYMBOL,), clock=clock)) as sim:
        sim.account.set_price(SYMBOL, PRICE)
        exchange = adapter(sim, clock=clock, clock_resync_s=600)
        exchange.load_markets([SYMBOL])
        exchange.measure_clock()
        clock.advance(300_000)  # half the allowed age: still fine
        exchange.keep_clock_fresh()
        assert len(requests_to(sim, "GET", "/fapi/v1/time")) == 5
        clock.advance(1_000)
        exchange.keep_clock_fresh()  # past half: measured now, between ticks
        assert len(requests_to(sim, "GET", "/fapi/v1/time")) == 10
        clock.advance(400_000)  # 400 s later the order finds a fresh offset
        sim.clear_requests()
        exchange.create_order(market("tb-fresh-enough"))
        assert [r.path for r in sim.requests] == ["/fapi/v1/order"]


def test_side_is_parsed(sim: SimExchange, ex: CcxtExchange) -> None:
    sim.account.set_position(SYMBOL, Decimal("0.02"), PRICE)
    order = ex.create_order(market("tb-close", Side.SELL, amount="0.02", reduce_only=True))
    assert (order.side, order.reduce_only, order.status) == (Side.SELL, True, OrderStatus.FILLED)
    assert sim.account.positions() == []
