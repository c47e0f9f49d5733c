"""Authentication, clock skew, rate limits and every fault kind, as real ccxt sees them."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator

import ccxt
import pytest
from support.sim_ccxt import SimBinanceUSDM, client, market_client

from trendbotd.sim import Fault, SimConfig, SimExchange

SYMBOL = "BTC/USDT:USDT"
ORDER = "/fapi/v1/order"


@pytest.fixture
def sim() -> Iterator[SimExchange]:
    with SimExchange(SimConfig(symbols=(SYMBOL,), seed=5)) as s:
        yield s


@pytest.fixture
def ex(sim: SimExchange) -> SimBinanceUSDM:
    return market_client(sim)


def _posts(sim: SimExchange) -> int:
    return sum(1 for r in sim.requests if (r.method, r.path) == ("POST", ORDER))


def _orders_with(sim: SimExchange, cid: str) -> int:
    return sum(1 for o in sim.state.orders.values() if o.client_id == cid)


# ----- authentication and time -----


def test_wrong_secret_is_a_bad_signature(sim: SimExchange) -> None:
    bad = client(sim, secret="0" * 64)
    with pytest.raises(ccxt.AuthenticationError, match="-1022"):
        bad.fetch_balance()


def test_wrong_api_key_is_rejected(sim: SimExchange) -> None:
    bad = client(sim, apiKey="someone-else")
    with pytest.raises(ccxt.AuthenticationError, match="-2015"):
        bad.fetch_balance()


def test_clock_skew_gives_invalid_nonce_until_resynced(
    sim: SimExchange, ex: SimBinanceUSDM
) -> None:
    sim.set_clock_skew_ms(20_000)  # the exchange runs 20 s ahead
    assert ex.fetch_time() - time.time() * 1000 > 15_000
    with pytest.raises(ccxt.InvalidNonce, match="-1021"):
        ex.fetch_balance()
    ex.load_time_difference()
    assert ex.fetch_balance()["USDT"]["total"] == 10000
    sim.set_clock_skew_ms(-20_000)  # now we are 20 s ahead of the exchange (offset stale)
    with pytest.raises(ccxt.InvalidNonce, match="ahead of the server"):
        ex.fetch_balance()
    assert not sim.requests[-1].accepted


def test_recv_window_is_honoured(sim: SimExchange, ex: SimBinanceUSDM) -> None:
    sim.set_clock_skew_ms(7_000)
    with pytest.raises(ccxt.InvalidNonce):
        ex.fetch_balance({"recvWindow": 5000})
    assert ex.fetch_balance({"recvWindow": 10000})["USDT"]["free"] == 10000


# ----- fault kinds -----


def test_error_fault_unknown_execution_is_operation_failed(
    sim: SimExchange, ex: SimBinanceUSDM
) -> None:
    sim.faults.add(
        Fault(
            method="POST",
            path=ORDER,
            kind="error",
            binance_code=-1001,
            http_status=503,
            msg="Internal error; unable to process your request. Please try again.",
        )
    )
    with pytest.raises(ccxt.OperationFailed) as info:
        ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "e1"})
    assert not isinstance(info.value, ccxt.NetworkError)
    assert _orders_with(sim, "e1") == 0
    # one shot: the next order goes through
    ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "e2"})
    assert _orders_with(sim, "e2") == 1


def test_http_status_fault_is_exchange_not_available(sim: SimExchange, ex: SimBinanceUSDM) -> None:
    sim.faults.add(Fault(path="/fapi/v3/account", kind="http_status", http_status=502))
    with pytest.raises(ccxt.ExchangeNotAvailable):
        ex.fetch_balance()
    assert ex.fetch_balance()["USDT"]["total"] == 10000


def test_rate_limit_fault_is_ddos_protection(sim: SimExchange, ex: SimBinanceUSDM) -> None:
    sim.faults.add(Fault(kind="rate_limit", path="/fapi/v1/openOrders"))
    with pytest.raises(ccxt.DDoSProtection):
        ex.fetch_open_orders(SYMBOL)


def test_weight_limit_answers_429(sim: SimExchange) -> None:
    tight = SimExchange(SimConfig(symbols=(SYMBOL,), weight_limit_per_minute=12)).start()
    try:
        ex = client(tight)
        ex.load_markets()  # weight 1
        with pytest.raises(ccxt.DDoSProtection):
            for _ in range(5):
                ex.fetch_ohlcv(SYMBOL, "1h", limit=1000)  # weight 5 each (Binance: by limit)
        assert tight.requests[-1].status == 429
    finally:
        tight.stop()


def test_delay_fault_delays_but_succeeds(sim: SimExchange, ex: SimBinanceUSDM) -> None:
    sim.faults.add(Fault(path="/fapi/v1/time", kind="delay", delay_ms=300))
    start = time.monotonic()
    ex.fetch_time()
    assert time.monotonic() - start >= 0.3


def test_drop_before_leaves_no_order(sim: SimExchange, ex: SimBinanceUSDM) -> None:
    sim.faults.add(Fault(method="POST", path=ORDER, kind="drop_before"))
    with pytest.raises(ccxt.NetworkError):
        ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "d1"})
    assert _posts(sim) == 1
    assert _orders_with(sim, "d1") == 0
    with pytest.raises(ccxt.OrderNotFound):
        ex.fetch_order(None, SYMBOL, {"clientOrderId": "d1"})


def test_drop_after_executes_the_order(sim: SimExchange, ex: SimBinanceUSDM) -> None:
    sim.faults.add(Fault(method="POST", path=ORDER, kind="drop_after"))
    with pytest.raises(ccxt.NetworkError) as info:
        ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "d2"})
    assert not isinstance(info.value, ccxt.RequestTimeout)
    assert _posts(sim) == 1  # ccxt did not retry the POST
    found = ex.fetch_order(None, SYMBOL, {"clientOrderId": "d2"})
    assert found["status"] == "closed"
    assert found["filled"] == 0.01


def test_timeout_executes_and_withholds_the_reply(sim: SimExchange) -> None:
    ex = client(sim, timeout=500)
    ex.load_markets()
    sim.faults.add(Fault(method="POST", path=ORDER, kind="timeout", delay_ms=1500))
    with pytest.raises(ccxt.RequestTimeout):
        ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "t1"})
    assert _posts(sim) == 1
    assert ex.fetch_order(None, SYMBOL, {"clientOrderId": "t1"})["status"] == "closed"


def test_fault_match_skip_and_times(sim: SimExchange, ex: SimBinanceUSDM) -> None:
    sim.faults.add(
        Fault(method="POST", path=ORDER, kind="error", binance_code=-1000, match={"side": "SELL"})
    )
    ex.create_order(SYMBOL, "market", "buy", 0.01)  # not matched: buys pass
    with pytest.raises(ccxt.OperationFailed):
        ex.create_order(SYMBOL, "market", "sell", 0.01)
    sim.faults.add(Fault(path="/fapi/v1/time", kind="http_status", skip=1, times=2))
    ex.fetch_time()
    for _ in range(2):
        with pytest.raises(ccxt.ExchangeNotAvailable):
            ex.fetch_time()
    ex.fetch_time()
    assert sim.faults.active() == []


# ----- robustness against malformed requests -----


def _raw(
    sim: SimExchange, method: str, path: str, body: str = "", headers: dict[str, str] | None = None
) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def test_malformed_requests_get_binance_json(sim: SimExchange) -> None:
    status, body = _raw(sim, "GET", "/fapi/v1/nothing")
    assert status == 404
    assert json.loads(body)["code"] == -5000
    status, body = _raw(sim, "GET", "/fapi/v1/klines?symbol=NOPE&interval=1h")
    assert (status, json.loads(body)["code"]) == (400, -1121)
    status, body = _raw(sim, "GET", "/fapi/v1/klines?symbol=BTCUSDT&interval=7h")
    assert json.loads(body)["code"] == -1120
    status, body = _raw(sim, "GET", "/fapi/v1/klines?symbol=BTCUSDT&interval=1h&limit=x")
    assert json.loads(body)["code"] == -1100
    status, body = _raw(sim, "GET", "/fapi/v3/account")
    assert (status, json.loads(body)["code"]) == (401, -2014)
    headers = {"X-MBX-APIKEY": sim.api_key}
    status, body = _raw(sim, "GET", "/fapi/v3/account?timestamp=1", headers=headers)
    assert json.loads(body)["code"] == -1102  # no signature
    status, body = _raw(sim, "POST", ORDER, "%%%=\xff", headers={"Content-Length": "zz"})
    assert status == 400
    assert "Traceback" not in body
    # the server is still fine
    assert _raw(sim, "GET", "/fapi/v1/time")[0] == 200


def test_bad_order_parameters(sim: SimExchange, ex: SimBinanceUSDM) -> None:
    with pytest.raises(ccxt.BadRequest, match="-1100"):
        ex.fapiPrivatePostOrder(
            {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "1e-3"}
        )
    with pytest.raises(ccxt.BadRequest, match="-1111"):
        ex.fapiPrivatePostOrder(
            {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.0011"}
        )
    with pytest.raises(ccxt.BadRequest, match="-1102"):
        ex.fapiPrivatePostOrder({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET"})
    with pytest.raises(ccxt.ExchangeError, match="-4120"):
        ex.fapiPrivatePostOrder(
            {
                "symbol": "BTCUSDT",
                "side": "SELL",
                "type": "STOP_MARKET",
                "quantity": "0.01",
                "stopPrice": "1000",
            }
        )
    assert sim.state.orders == {}
