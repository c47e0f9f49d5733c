"""Every injected or provoked exchange failure maps to the intended trendbotd error.

Real ccxt over HTTP to the simulated exchange. Each order-changing case also checks that
exactly one request was sent (never retried) and what the sim actually did with it.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import ccxt
import pytest
from exchange_helpers import PRICE, SYMBOL, adapter, limit_buy, market, requests_to, stop

from trendbotd.adapters.ccxt_exchange import CcxtExchange
from trendbotd.core.retry import RetryPolicy
from trendbotd.errors import (
    ClockSkewError,
    DuplicateClientOrderIdError,
    ExchangeAuthError,
    ExchangeError,
    InsufficientFundsError,
    InvalidOrderError,
    OrderNotFoundError,
    OutcomeUnknownError,
    RateLimitedError,
    ReduceOnlyRejectedError,
    TransientExchangeError,
)
from trendbotd.sim import Fault, SimConfig, SimExchange

ORDER = "/fapi/v1/order"
ALGO = "/fapi/v1/algoOrder"


@pytest.fixture
def sim() -> Iterator[SimExchange]:
    with SimExchange(SimConfig(symbols=(SYMBOL,), seed=11)) as s:
        s.state.set_price(SYMBOL, PRICE)
        yield s


@pytest.fixture
def ex(sim: SimExchange) -> Iterator[CcxtExchange]:
    exchange = adapter(sim, timeout_s=0.5)
    exchange.measure_clock()
    exchange.load_markets([SYMBOL])
    sim.clear_requests()
    yield exchange
    exchange.close()


def orders_with(sim: SimExchange, cid: str) -> int:
    return sum(1 for o in sim.state.orders.values() if o.client_id == cid)


# ----- order creation: outcome unknown -----

UNKNOWN_OUTCOME = [
    # (fault, executed by the sim?)
    (Fault(method="POST", path=ORDER, kind="drop_before"), False),
    (Fault(method="POST", path=ORDER, kind="drop_after"), True),
    (Fault(method="POST", path=ORDER, kind="timeout", delay_ms=1500), True),
    (Fault(method="POST", path=ORDER, kind="error", binance_code=-1001, http_status=503), False),
    (Fault(method="POST", path=ORDER, kind="error", binance_code=-1000, http_status=500), False),
    (Fault(method="POST", path=ORDER, kind="error", binance_code=-1006, http_status=500), False),
    (Fault(method="POST", path=ORDER, kind="error", binance_code=-1007, http_status=408), False),
    (Fault(method="POST", path=ORDER, kind="http_status", status=502, body="Bad Gateway"), False),
    (Fault(method="POST", path=ORDER, kind="http_status", status=503), False),
]


@pytest.mark.parametrize(
    ("fault", "executed"), UNKNOWN_OUTCOME, ids=lambda v: getattr(v, "kind", str(v))
)
def test_create_order_outcome_unknown(
    sim: SimExchange, ex: CcxtExchange, fault: Fault, executed: bool
) -> None:
    sim.faults.add(fault)
    with pytest.raises(OutcomeUnknownError) as excinfo:
        ex.create_order(market("tb-unknown"))
    assert excinfo.value.client_order_id == "tb-unknown"
    assert isinstance(excinfo.value.__cause__, ccxt.BaseError)
    assert len(requests_to(sim, "POST", ORDER)) == 1  # never resent by the adapter
    assert orders_with(sim, "tb-unknown") == int(executed)
    # Only the query by client id tells the two apart.
    found = ex.fetch_order_by_client_id(SYMBOL, "tb-unknown", conditional=False)
    assert (found is not None) is executed


def test_cancel_dropped_after_acceptance_is_outcome_unknown(
    sim: SimExchange, ex: CcxtExchange
) -> None:
    ex.create_order(limit_buy("tb-cancel"))
    sim.faults.add(Fault(method="DELETE", path=ORDER, kind="drop_after"))
    with pytest.raises(OutcomeUnknownError) as excinfo:
        ex.cancel_order_by_client_id(SYMBOL, "tb-cancel", conditional=False)
    assert excinfo.value.client_order_id == "tb-cancel"
    assert sim.state.open_orders() == []  # it did happen


def test_stop_order_timeout_is_outcome_unknown(sim: SimExchange, ex: CcxtExchange) -> None:
    sim.state.set_position(SYMBOL, Decimal("0.01"), PRICE)
    sim.faults.add(Fault(method="POST", path=ALGO, kind="timeout", delay_ms=1500))
    with pytest.raises(OutcomeUnknownError):
        ex.create_order(stop("tb-stop-t"))
    found = ex.fetch_order_by_client_id(SYMBOL, "tb-stop-t", conditional=True)
    assert found is not None
    assert found.conditional


def test_a_client_crash_during_an_order_call_is_outcome_unknown(
    ex: CcxtExchange, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*args: Any) -> Any:
        raise KeyError("avgPrice")  # e.g. ccxt failing to parse an accepted order's reply

    monkeypatch.setattr(ex._client, "create_order", crash)
    with pytest.raises(OutcomeUnknownError) as excinfo:
        ex.create_order(market("tb-crash"))
    assert excinfo.value.client_order_id == "tb-crash"
    assert isinstance(excinfo.value.__cause__, KeyError)


# ----- order creation: rejected as such (the loopback URL still gets USD-M's table) -----


def _rejected(excinfo: pytest.ExceptionInfo[Any], code: int, ccxt_class: type) -> None:
    cause = excinfo.value.__cause__
    assert type(cause) is ccxt_class, f"ccxt raised {type(cause).__name__}"
    assert excinfo.value.code == code


def test_reduce_only_rejected_2022(sim: SimExchange, ex: CcxtExchange) -> None:
    with pytest.raises(ReduceOnlyRejectedError) as excinfo:
        ex.create_order(market("tb-ro", reduce_only=True, side=market("x").side.opposite))
    _rejected(excinfo, -2022, ccxt.InvalidOrder)
    assert orders_with(sim, "tb-ro") == 0


def test_duplicate_client_id_4116(ex: CcxtExchange) -> None:
    ex.create_order(limit_buy("tb-dup"))
    with pytest.raises(DuplicateClientOrderIdError) as excinfo:
        ex.create_order(limit_buy("tb-dup"))
    _rejected(excinfo, -4116, ccxt.InvalidOrder)


def test_margin_insufficient_2019(ex: CcxtExchange) -> None:
    with pytest.raises(InsufficientFundsError) as excinfo:
        ex.create_order(market("tb-big", amount="10"))
    _rejected(excinfo, -2019, ccxt.InsufficientFunds)


def test_notional_too_small_4164(ex: CcxtExchange) -> None:
    with pytest.raises(InvalidOrderError) as excinfo:
        ex.create_order(market("tb-tiny", amount="0.001"))
    assert type(excinfo.value) is InvalidOrderError
    _rejected(excinfo, -4164, ccxt.InvalidOrder)


def test_stop_that_would_trigger_at_once_2021(sim: SimExchange, ex: CcxtExchange) -> None:
    sim.state.set_position(SYMBOL, Decimal("0.01"), PRICE)
    with pytest.raises(InvalidOrderError) as excinfo:
        ex.create_order(stop("tb-stop-now", trigger="31000"))
    _rejected(excinfo, -2021, ccxt.OrderImmediatelyFillable)


# ----- clock, auth, rate limits -----


def test_timestamp_rejected_1021_is_clock_skew_and_remeasures(
    sim: SimExchange, ex: CcxtExchange
) -> None:
    sim.faults.add(
        Fault(method="POST", path=ORDER, kind="error", binance_code=-1021, http_status=400)
    )
    with pytest.raises(ClockSkewError) as excinfo:
        ex.create_order(market("tb-1021"))
    assert isinstance(excinfo.value.__cause__, ccxt.InvalidNonce)
    assert len(requests_to(sim, "POST", ORDER)) == 1  # not retried, not executed
    assert orders_with(sim, "tb-1021") == 0
    assert len(requests_to(sim, "GET", "/fapi/v1/time")) == 5  # offset measured again


def test_real_skew_rejection_on_an_order(sim: SimExchange, ex: CcxtExchange) -> None:
    sim.set_clock_skew_ms(-20_000)  # after our measurement: our stamps run ahead
    with pytest.raises(ClockSkewError, match="-1021"):
        ex.create_order(market("tb-ahead"))
    assert orders_with(sim, "tb-ahead") == 0
    offset = ex.clock_offset
    assert offset is not None
    assert offset.offset_ms < -19_000  # re-measured: the next order would be refused locally


@pytest.mark.parametrize("code", [-1022, -2014, -2015])
def test_auth_errors(sim: SimExchange, ex: CcxtExchange, code: int) -> None:
    sim.faults.add(Fault(path=ORDER, kind="error", binance_code=code, http_status=401))
    with pytest.raises(ExchangeAuthError):
        ex.create_order(market("tb-auth"))


def test_wrong_secret_is_an_auth_error_on_reads_without_retry(sim: SimExchange) -> None:
    bad = adapter(sim, api_secret="0" * 64)
    with pytest.raises(ExchangeAuthError, match="-1022"):
        bad.fetch_balance()
    assert len(requests_to(sim, "GET", "/fapi/v3/account")) == 1


def test_rate_limited_429_then_held_off(sim: SimExchange, ex: CcxtExchange) -> None:
    sim.faults.add(Fault(method="POST", path=ORDER, kind="rate_limit"))
    with pytest.raises(RateLimitedError) as excinfo:
        ex.create_order(market("tb-429"))
    assert isinstance(excinfo.value.__cause__, ccxt.DDoSProtection | ccxt.RateLimitExceeded)
    assert "-1003" in str(excinfo.value)
    # within the hold-off, the next order is not even sent
    with pytest.raises(RateLimitedError, match="not sent"):
        ex.create_order(market("tb-429b"))
    assert len(requests_to(sim, "POST", ORDER)) == 1
    assert orders_with(sim, "tb-429") == orders_with(sim, "tb-429b") == 0


# ----- reads -----


def test_transient_read_failures_are_retried(sim: SimExchange, ex: CcxtExchange) -> None:
    sim.faults.add(Fault(path="/fapi/v3/account", kind="http_status", status=502, times=1))
    sim.faults.add(Fault(path="/fapi/v3/account", kind="drop_before", times=1))
    assert ex.fetch_balance().total == Decimal(10000)
    assert len(requests_to(sim, "GET", "/fapi/v3/account")) == 3


def test_reads_give_up_within_their_bounds(sim: SimExchange) -> None:
    exchange = adapter(
        sim, read_retry=RetryPolicy(attempts=4, deadline_s=5, first_delay_s=0.01, max_delay_s=4)
    )
    exchange.load_markets([SYMBOL])
    sim.faults.add(
        Fault(
            path="/fapi/v3/account", kind="error", binance_code=-1001, http_status=503, times=None
        )
    )
    with pytest.raises(TransientExchangeError) as excinfo:
        exchange.fetch_balance()
    assert type(excinfo.value) is TransientExchangeError
    assert len(requests_to(sim, "GET", "/fapi/v3/account")) == 4


def test_lookup_by_client_id_never_reads_a_network_error_as_absent(
    sim: SimExchange, ex: CcxtExchange
) -> None:
    sim.faults.add(Fault(path=ORDER, method="GET", kind="drop_before", times=None))
    with pytest.raises(TransientExchangeError):
        ex.fetch_order_by_client_id(SYMBOL, "tb-whatever", conditional=False)


def test_unknown_order_on_cancel_is_not_found(ex: CcxtExchange) -> None:
    with pytest.raises(OrderNotFoundError) as excinfo:
        ex.cancel_order_by_client_id(SYMBOL, "tb-none", conditional=False)
    assert "-2011" in str(excinfo.value)


def test_unknown_code_on_a_read_is_an_exchange_error_not_retried(
    sim: SimExchange, ex: CcxtExchange
) -> None:
    sim.faults.add(Fault(path="/fapi/v3/account", kind="error", binance_code=-4999, times=None))
    with pytest.raises(ExchangeError) as excinfo:
        ex.fetch_balance()
    assert type(excinfo.value) is ExchangeError
    assert len(requests_to(sim, "GET", "/fapi/v3/account")) == 1


# ----- Retry-After (the sim's 429 carries none: a tiny loopback server sends one) -----


class _RetryAfterHandler(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        if type(self).hits == 1:
            body = b'{"code":-1003,"msg":"Too many requests."}'
            self.send_response(429)
            self.send_header("Retry-After", "1")
        else:
            body = b'{"serverTime": 1}'
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return None


def test_retry_after_is_honoured_on_reads() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RetryAfterHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    clock = _RecordingClock()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        exchange = CcxtExchange(
            exchange_id="binanceusdm",
            api_key="k",
            api_secret="s",
            base_url=base,
            demo=False,
            recv_window_ms=5000,
            timeout_s=2,
            clock=clock,
            rate_limit=False,
            clock_samples=1,
            read_retry=RetryPolicy(attempts=3, deadline_s=5, first_delay_s=0.01, max_delay_s=4),
        )
        exchange.measure_clock()
        assert clock.slept == [1.0]  # Retry-After, not the 10 ms backoff
        assert _RetryAfterHandler.hits == 2
    finally:
        server.shutdown()
        server.server_close()


class _RecordingClock:
    def __init__(self) -> None:
        self.slept: list[float] = []
        self.now = 0

    def now_ms(self) -> int:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += int(seconds * 1000)
