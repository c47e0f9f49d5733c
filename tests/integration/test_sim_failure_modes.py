"""More of Binance's failure modes, as real ccxt sees them from the simulated exchange:
a market order that fills only in part (the rest EXPIRED), -1001/-1007 answered after
the order executed, an order that queries do not show yet, and a clock that jumps
mid-run."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import ccxt
import pytest
from support.sim_ccxt import SimBinanceUSDM, market_client

from trendbotd.sim import Fault, SimConfig, SimExchange

SYMBOL = "BTC/USDT:USDT"
ORDER = "/fapi/v1/order"


@pytest.fixture
def sim() -> Iterator[SimExchange]:
    with SimExchange(SimConfig(symbols=(SYMBOL,), seed=5)) as s:
        s.account.set_price(SYMBOL, Decimal(50000))
        yield s


@pytest.fixture
def ex(sim: SimExchange) -> SimBinanceUSDM:
    return market_client(sim)


def _control(sim: SimExchange, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        sim.base_url + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as reply:
        return json.loads(reply.read() or b"null")


def _wait_for(check: Callable[[], bool], *, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def _accepted_posts(sim: SimExchange, cid: str) -> int:
    return sum(
        1
        for r in sim.requests
        if (r.method, r.path) == ("POST", ORDER)
        and r.accepted
        and r.params.get("newClientOrderId") == cid
    )


# ----- partial fill -----


def test_partial_fill_expires_the_rest_and_the_position_is_the_fill(
    sim: SimExchange, ex: SimBinanceUSDM
) -> None:
    _control(
        sim,
        "/sim/faults",
        {"method": "POST", "path": ORDER, "kind": "partial_fill", "fill_qty": "0.004"},
    )
    ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "p1"})
    order = ex.fetch_order(None, SYMBOL, {"clientOrderId": "p1"})
    assert order["info"]["status"] == "EXPIRED"
    assert order["amount"] == 0.01
    assert order["filled"] == 0.004
    assert order["remaining"] == pytest.approx(0.006)
    [position] = [p for p in ex.fetch_positions([SYMBOL]) if p["contracts"]]
    assert position["contracts"] == 0.004
    assert position["side"] == "long"
    # one shot: the next market order fills in full
    ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "p2"})
    assert ex.fetch_order(None, SYMBOL, {"clientOrderId": "p2"})["filled"] == 0.01


def test_partial_fill_needs_its_quantity(sim: SimExchange) -> None:
    with pytest.raises(ValueError, match="fill_qty"):
        Fault(kind="partial_fill")


# ----- errors after execution -----


# Binance: -1001 DISCONNECTED comes with HTTP 503, -1007 TIMEOUT with 408 ("a timeout
# has occurred while waiting for a response from the backend server").
ERRORS_AFTER: dict[str, tuple[dict[str, Any], type[Exception]]] = {
    "-1001": (
        {
            "binance_code": -1001,
            "http_status": 503,
            "msg": "Internal error; unable to process your request. Please try again.",
        },
        ccxt.OperationFailed,
    ),
    "-1007": (
        {
            "binance_code": -1007,
            "http_status": 408,
            "msg": "Timeout waiting for response from backend server. Send status unknown; "
            "execution status unknown.",
        },
        ccxt.RequestTimeout,
    ),
}


@pytest.mark.parametrize("code", list(ERRORS_AFTER))
def test_error_after_execution_leaves_the_order_executed(
    sim: SimExchange, ex: SimBinanceUSDM, code: str
) -> None:
    fault, ccxt_error = ERRORS_AFTER[code]
    sim.faults.add(Fault(method="POST", path=ORDER, kind="error_after", **fault))
    with pytest.raises(ccxt_error, match=str(code)):
        ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "u1"})
    assert sim.requests[-1].accepted  # executed, whatever the answer said
    assert _accepted_posts(sim, "u1") == 1
    found = ex.fetch_order(None, SYMBOL, {"clientOrderId": "u1"})
    assert found["status"] == "closed"
    assert found["filled"] == 0.01
    assert sim.account.position(SYMBOL).amount == Decimal("0.010")


# ----- an order the queries do not show yet -----


def test_visibility_delay_hides_an_executed_order_from_queries(
    sim: SimExchange, ex: SimBinanceUSDM
) -> None:
    # A delay far longer than the test: what is hidden does not depend on the test's pace.
    assert _control(sim, "/sim/visibility_delay", {"delay_ms": 600_000}) is None
    ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "v1"})
    ex.create_order(SYMBOL, "limit", "buy", 0.01, 40000, {"clientOrderId": "v2"})
    assert sim.account.position(SYMBOL).amount == Decimal("0.010")  # it did execute
    with pytest.raises(ccxt.OrderNotFound, match="-2013"):
        ex.fetch_order(None, SYMBOL, {"clientOrderId": "v1"})
    assert ex.fetch_open_orders(SYMBOL) == []  # the resting limit order is hidden too
    assert [p["contracts"] for p in ex.fetch_positions([SYMBOL]) if p["contracts"]] == [0.01]
    _control(sim, "/sim/visibility_delay", {"delay_ms": 0})
    assert ex.fetch_order(None, SYMBOL, {"clientOrderId": "v1"})["filled"] == 0.01
    assert [o["clientOrderId"] for o in ex.fetch_open_orders(SYMBOL)] == ["v2"]


def test_visibility_delay_counts_from_the_order_s_creation(
    sim: SimExchange, ex: SimBinanceUSDM
) -> None:
    sim.state.set_visibility_delay(1500, conditional=False)
    sent = time.monotonic()
    ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "v3"})

    def visible() -> bool:
        try:
            return ex.fetch_order(None, SYMBOL, {"clientOrderId": "v3"})["filled"] == 0.01
        except ccxt.OrderNotFound:
            return False

    _wait_for(visible)
    assert time.monotonic() - sent >= 1.5


def _open_stops(ex: SimBinanceUSDM) -> list[str]:
    return [o["clientOrderId"] for o in ex.fetch_open_orders(SYMBOL, None, None, {"trigger": True})]


def test_visibility_delay_covers_conditional_orders_only_when_asked(
    sim: SimExchange, ex: SimBinanceUSDM
) -> None:
    ex.create_order(SYMBOL, "market", "buy", 0.01)
    stop = {"triggerPrice": 45000, "reduceOnly": True}
    sim.state.set_visibility_delay(60_000, conditional=False)
    ex.create_order(SYMBOL, "STOP_MARKET", "sell", 0.01, None, {**stop, "clientOrderId": "s1"})
    assert ex.fetch_order(None, SYMBOL, {"clientOrderId": "s1", "trigger": True})
    sim.state.set_visibility_delay(60_000, conditional=True)
    ex.create_order(SYMBOL, "STOP_MARKET", "sell", 0.01, None, {**stop, "clientOrderId": "s2"})
    with pytest.raises(ccxt.OrderNotFound):
        ex.fetch_order(None, SYMBOL, {"clientOrderId": "s2", "trigger": True})
    assert _open_stops(ex) == []  # s1 too: it is younger than the delay
    sim.state.set_visibility_delay(0, conditional=True)
    assert sorted(_open_stops(ex)) == ["s1", "s2"]


# ----- a clock that jumps while running -----


def test_clock_skew_set_mid_run_refuses_signed_requests_until_remeasured(
    sim: SimExchange, ex: SimBinanceUSDM
) -> None:
    ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "k1"})
    _control(sim, "/sim/skew", {"skew_ms": 15_000})  # mid-run: the exchange jumps 15 s ahead
    with pytest.raises(ccxt.InvalidNonce, match="-1021"):
        ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "k2"})
    assert _accepted_posts(sim, "k2") == 0  # refused before execution
    assert sim.account.position(SYMBOL).amount == Decimal("0.010")
    ex.load_time_difference()
    ex.create_order(SYMBOL, "market", "sell", 0.01, None, {"clientOrderId": "k3"})
    assert sim.account.position(SYMBOL).amount == 0
