"""Orders and algo (stop) orders through real ccxt, checked against the sim's own books."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import ccxt
import pytest
from support.sim_ccxt import SimBinanceUSDM, connect, mid_bar_clock, place_stop_loss, resync

from trendbotd.core.clock import ManualClock
from trendbotd.core.domain import OrderStatus
from trendbotd.sim import SimConfig, SimExchange

SYMBOL = "BTC/USDT:USDT"
HOUR = 3_600_000


@pytest.fixture
def clock() -> ManualClock:
    return mid_bar_clock()


@pytest.fixture
def sim(clock: ManualClock) -> Iterator[SimExchange]:
    with SimExchange(SimConfig(symbols=(SYMBOL,), seed=3, clock=clock)) as s:
        s.account.set_price(SYMBOL, Decimal(30000))
        yield s


@pytest.fixture
def ex(sim: SimExchange) -> SimBinanceUSDM:
    return connect(sim)


def test_market_order_fills_at_the_price_with_taker_fee(
    sim: SimExchange, ex: SimBinanceUSDM
) -> None:
    order = ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "m1"})
    assert order["clientOrderId"] == "m1"
    assert order["status"] == "closed"
    assert order["filled"] == 0.01
    assert order["average"] == 30000
    info = order["info"]
    for key in ("orderId", "executedQty", "avgPrice", "cumQuote", "reduceOnly", "updateTime"):
        assert key in info
    assert (info["status"], info["type"], info["side"]) == ("FILLED", "MARKET", "BUY")
    assert Decimal(info["cumQuote"]) == Decimal("300")
    # fee: 300 * 0.0005 = 0.15, exactly, in the wallet
    assert sim.state.wallet == Decimal(10000) - Decimal("0.15")
    position = sim.account.position(SYMBOL)
    assert (position.amount, position.entry_price) == (Decimal("0.010"), Decimal(30000))
    positions = ex.fetch_positions([SYMBOL])
    assert len(positions) == 1
    assert positions[0]["contracts"] == 0.01
    assert positions[0]["entryPrice"] == 30000
    assert positions[0]["side"] == "long"


def test_round_trip_realises_pnl_in_decimal(sim: SimExchange, ex: SimBinanceUSDM) -> None:
    ex.create_order(SYMBOL, "market", "sell", 0.02, None, {"clientOrderId": "s1"})
    sim.account.set_price(SYMBOL, Decimal("29000.5"))
    ex.create_order(
        SYMBOL, "market", "buy", 0.02, None, {"clientOrderId": "b1", "reduceOnly": True}
    )
    fees = Decimal("0.02") * Decimal(30000) * Decimal("0.0005") + Decimal("0.02") * Decimal(
        "29000.5"
    ) * Decimal("0.0005")
    pnl = (Decimal(30000) - Decimal("29000.5")) * Decimal("0.02")
    assert sim.state.wallet == Decimal(10000) + pnl - fees
    assert sim.account.positions() == []
    balance = ex.fetch_balance()
    assert Decimal(str(balance["USDT"]["total"])) == Decimal(10000) + pnl - fees


def test_fetch_order_by_client_id_and_reuse_of_closed_id(ex: SimBinanceUSDM) -> None:
    first = ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "same"})
    found = ex.fetch_order(None, SYMBOL, {"clientOrderId": "same"})
    assert found["id"] == first["id"]
    assert found["status"] == "closed"
    # Binance allows reusing the client id of a closed order; the query returns the latest
    second = ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "same"})
    assert second["id"] != first["id"]
    assert ex.fetch_order(None, SYMBOL, {"clientOrderId": "same"})["id"] == second["id"]


def test_limit_order_rests_then_fills_as_maker(sim: SimExchange, ex: SimBinanceUSDM) -> None:
    order = ex.create_order(SYMBOL, "limit", "buy", 0.01, 29000, {"clientOrderId": "l1"})
    assert order["status"] == "open"
    assert [o["clientOrderId"] for o in ex.fetch_open_orders(SYMBOL)] == ["l1"]
    sim.account.set_price(SYMBOL, Decimal(28500))  # the jump crosses 29000
    filled = ex.fetch_order(None, SYMBOL, {"clientOrderId": "l1"})
    assert filled["status"] == "closed"
    assert filled["average"] == 29000
    assert ex.fetch_open_orders(SYMBOL) == []
    fee = Decimal("0.01") * Decimal(29000) * Decimal("0.0002")
    assert sim.state.wallet == Decimal(10000) - fee


def test_limit_order_fills_when_the_generated_path_crosses(
    sim: SimExchange, ex: SimBinanceUSDM, clock: ManualClock
) -> None:
    sim.account.set_price(SYMBOL, None)
    candles = ex.fetch_ohlcv(SYMBOL, "1h", limit=2)
    price = sim.state.price(SYMBOL)
    limit = float(price) * 0.999
    ex.create_order(SYMBOL, "limit", "buy", 0.01, round(limit, 1), {"clientOrderId": "l2"})
    assert candles
    # walk forward bar by bar until the path trades through the limit
    for _ in range(200):
        clock.advance(HOUR)
        resync(ex)
        if ex.fetch_order(None, SYMBOL, {"clientOrderId": "l2"})["status"] == "closed":
            break
    order = ex.fetch_order(None, SYMBOL, {"clientOrderId": "l2"})
    assert order["status"] == "closed"
    assert order["average"] == round(limit, 1)


def test_cancel_and_unknown_orders(ex: SimBinanceUSDM) -> None:
    ex.create_order(SYMBOL, "limit", "sell", 0.01, 31000, {"clientOrderId": "c1"})
    canceled = ex.cancel_order(None, SYMBOL, {"clientOrderId": "c1"})
    assert canceled["status"] == "canceled"
    with pytest.raises(ccxt.OrderNotFound, match="-2011"):
        ex.cancel_order(None, SYMBOL, {"clientOrderId": "c1"})
    with pytest.raises(ccxt.OrderNotFound, match="-2013"):
        ex.fetch_order(None, SYMBOL, {"clientOrderId": "never"})
    with pytest.raises(ccxt.OrderNotFound, match="-2011"):
        ex.cancel_order("123", SYMBOL)


def test_duplicate_open_client_id_is_rejected(ex: SimBinanceUSDM) -> None:
    ex.create_order(SYMBOL, "limit", "buy", 0.01, 29000, {"clientOrderId": "dup"})
    with pytest.raises(ccxt.InvalidOrder, match="-4116"):
        ex.create_order(SYMBOL, "limit", "buy", 0.01, 29000, {"clientOrderId": "dup"})


def test_order_rejections_map_to_ccxt_classes(sim: SimExchange, ex: SimBinanceUSDM) -> None:
    with pytest.raises(ccxt.InvalidOrder, match="-2022"):
        ex.create_order(SYMBOL, "market", "sell", 0.01, None, {"reduceOnly": True})
    with pytest.raises(ccxt.InvalidOrder, match="-4164"):
        ex.create_order(SYMBOL, "market", "buy", 0.001)  # 30 USDT < 100 minimum
    with pytest.raises(ccxt.InsufficientFunds, match="-2019"):
        ex.create_order(SYMBOL, "market", "buy", 10)  # 300k notional at 20x needs 15k
    assert sim.account.positions() == []


def test_reduce_only_market_is_clipped_to_the_position(
    sim: SimExchange, ex: SimBinanceUSDM
) -> None:
    sim.account.set_position(SYMBOL, Decimal("0.01"), Decimal(30000))
    order = ex.create_order(SYMBOL, "market", "sell", 0.05, None, {"reduceOnly": True})
    assert order["filled"] == 0.01
    assert sim.account.positions() == []


def test_ccxt_sends_stop_orders_to_the_algo_api(sim: SimExchange, ex: SimBinanceUSDM) -> None:
    sim.account.set_position(SYMBOL, Decimal("0.01"), Decimal(30000))
    variants = [
        ("market", {"stopLossPrice": 28000}),
        ("market", {"triggerPrice": 27900}),
        ("STOP_MARKET", {"stopPrice": 27800}),
    ]
    for i, (kind, extra) in enumerate(variants):
        cid = f"stop{i}"
        order = ex.create_order(
            SYMBOL, kind, "sell", 0.01, None, {**extra, "reduceOnly": True, "clientOrderId": cid}
        )
        assert order["clientOrderId"] == cid
        assert order["status"] == "open"
        assert order["reduceOnly"] is True
        sent = [r for r in sim.requests if r.path == "/fapi/v1/algoOrder" and r.method == "POST"]
        params = sent[-1].params
        assert params["algoType"] == "CONDITIONAL"
        assert params["type"] == "STOP_MARKET"
        assert params["clientAlgoId"] == cid
        assert params["reduceOnly"] == "true"
        assert "triggerPrice" in params
    assert ex.fetch_open_orders(SYMBOL) == []  # plain open orders do not show algo orders
    algos = ex.fetch_open_orders(SYMBOL, params={"trigger": True})
    assert sorted(o["clientOrderId"] for o in algos) == ["stop0", "stop1", "stop2"]
    assert sorted(o["triggerPrice"] for o in algos) == [27800, 27900, 28000]
    one = ex.fetch_order(None, SYMBOL, {"clientOrderId": "stop1", "trigger": True})
    assert (one["status"], one["triggerPrice"]) == ("open", 27900)
    ex.cancel_order(None, SYMBOL, {"clientOrderId": "stop1", "trigger": True})
    gone = ex.fetch_order(None, SYMBOL, {"clientOrderId": "stop1", "trigger": True})
    assert gone["status"] == "canceled"
    with pytest.raises(ccxt.OrderNotFound):
        ex.fetch_order(None, SYMBOL, {"clientOrderId": "nope", "trigger": True})


def test_cancel_all_cancels_plain_and_algo_orders_apart(
    sim: SimExchange, ex: SimBinanceUSDM
) -> None:
    sim.account.set_position(SYMBOL, Decimal("0.02"), Decimal(30000))
    ex.create_order(SYMBOL, "limit", "buy", 0.01, 29000, {"clientOrderId": "b1"})
    ex.create_order(SYMBOL, "limit", "buy", 0.01, 28500, {"clientOrderId": "b2"})
    for i, trigger in enumerate((28000, 27000)):
        stop = {"stopLossPrice": trigger, "reduceOnly": True, "clientOrderId": f"s{i}"}
        ex.create_order(SYMBOL, "market", "sell", 0.01, None, stop)
    answer = ex.cancel_all_orders(SYMBOL)
    assert answer[0]["info"]["msg"] == "The operation of cancel all open order is done."
    assert ex.fetch_open_orders(SYMBOL) == []
    assert len(ex.fetch_open_orders(SYMBOL, params={"trigger": True})) == 2  # not plain orders
    assert sim.account.order(SYMBOL, "b1").status is OrderStatus.CANCELED
    ex.cancel_all_orders(SYMBOL, params={"trigger": True})
    assert ex.fetch_open_orders(SYMBOL, params={"trigger": True}) == []
    assert sim.account.order(SYMBOL, "s1", conditional=True).status is OrderStatus.CANCELED
    assert sim.account.position(SYMBOL).amount == Decimal("0.02")  # nothing filled


def test_triggered_stop_fills_at_trigger_and_is_visible(
    sim: SimExchange, ex: SimBinanceUSDM
) -> None:
    ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "entry"})
    place_stop_loss(ex, SYMBOL, 0.01, 29000, cid="sl")
    sim.account.set_price(SYMBOL, Decimal(28000))  # falls through the stop
    algo = ex.fetch_order(None, SYMBOL, {"clientOrderId": "sl", "trigger": True})
    assert algo["status"] == "closed"
    info = algo["info"]
    assert info["algoStatus"] == "FINISHED"
    assert info["actualOrderId"]
    assert Decimal(info["actualPrice"]) == Decimal(29000)
    assert sim.account.positions() == []
    history = ex.fetch_orders(SYMBOL)
    actual = [o for o in history if o["id"] == info["actualOrderId"]]
    assert len(actual) == 1
    assert actual[0]["average"] == 29000
    assert actual[0]["info"]["origType"] == "STOP_MARKET"
    assert ex.fetch_open_orders(SYMBOL, params={"trigger": True}) == []
    expected = (
        Decimal(10000)
        - Decimal("0.01") * Decimal(1000)
        - Decimal("0.01") * Decimal(30000) * Decimal("0.0005")
        - Decimal("0.01") * Decimal(29000) * Decimal("0.0005")
    )
    assert sim.state.wallet == expected


def test_stop_that_would_trigger_at_once_is_rejected(ex: SimBinanceUSDM) -> None:
    with pytest.raises(ccxt.OrderImmediatelyFillable, match="-2021"):
        ex.create_order(SYMBOL, "market", "sell", 0.01, None, {"stopLossPrice": 31000})


def test_reduce_only_stop_with_no_position_expires(sim: SimExchange, ex: SimBinanceUSDM) -> None:
    place_stop_loss(ex, SYMBOL, 0.01, 29000, cid="orphan")
    sim.account.set_price(SYMBOL, Decimal(28000))
    algo = ex.fetch_order(None, SYMBOL, {"clientOrderId": "orphan", "trigger": True})
    assert algo["status"] == "expired"
    assert sim.account.positions() == []


def test_position_mode_endpoints_and_leverage(sim: SimExchange, ex: SimBinanceUSDM) -> None:
    assert ex.fetch_position_mode(SYMBOL)["hedged"] is False
    assert ex.fapiPrivateGetMultiAssetsMargin()["multiAssetsMargin"] is False
    sim.state.set_hedge_mode(True)
    sim.state.set_multi_assets(True)
    assert ex.fetch_position_mode(SYMBOL)["hedged"] is True
    assert ex.fapiPrivateGetMultiAssetsMargin()["multiAssetsMargin"] is True
    with pytest.raises(ccxt.ExchangeError, match="-4061"):
        ex.create_order(SYMBOL, "market", "buy", 0.01)
    sim.state.set_hedge_mode(False)
    assert ex.set_leverage(5, SYMBOL)["leverage"] == 5
    assert sim.state.books["BTCUSDT"].leverage == 5


def test_account_endpoint_shape(sim: SimExchange, ex: SimBinanceUSDM) -> None:
    ex.create_order(SYMBOL, "market", "buy", 0.01)
    sim.account.set_price(SYMBOL, Decimal(31000))
    acct = ex.fapiPrivateV3GetAccount()
    for key in ("totalWalletBalance", "totalUnrealizedProfit", "availableBalance"):
        assert key in acct
    assert Decimal(acct["totalUnrealizedProfit"]) == Decimal(10)  # 0.01 * (31000 - 30000)
    assert acct["assets"][0]["asset"] == "USDT"
    assert acct["positions"][0]["symbol"] == "BTCUSDT"
    assert Decimal(acct["positions"][0]["positionAmt"]) == Decimal("0.01")
    v2 = ex.fapiPrivateV2GetAccount()
    assert v2["positions"][0]["leverage"] == "20"
    risk = ex.fapiPrivateV2GetPositionRisk({"symbol": "BTCUSDT"})
    assert Decimal(risk[0]["entryPrice"]) == Decimal(30000)
