"""Request authentication and the fault rule set."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from trendbotd.sim import signing
from trendbotd.sim.errors import SimError
from trendbotd.sim.faults import Fault, FaultSet

SECRET = "s3cret"


def _signed(query: str) -> str:
    sig = hmac.new(SECRET.encode(), query.encode(), hashlib.sha256).hexdigest()
    return f"{query}&signature={sig}"


def _code(exc: pytest.ExceptionInfo[SimError]) -> int:
    return exc.value.code


def test_valid_signature_in_query_or_body() -> None:
    signing.check_signature(_signed("symbol=BTCUSDT&timestamp=1"), "", SECRET)
    signing.check_signature("", _signed("symbol=BTCUSDT&timestamp=1"), SECRET)


def test_tampered_or_missing_signature() -> None:
    tampered = _signed("symbol=BTCUSDT&timestamp=1").replace("BTC", "ETH")
    with pytest.raises(SimError) as bad:
        signing.check_signature(tampered, "", SECRET)
    assert _code(bad) == -1022
    with pytest.raises(SimError) as missing:
        signing.check_signature("symbol=BTCUSDT", "", SECRET)
    assert _code(missing) == -1102


def test_api_key_checks() -> None:
    with pytest.raises(SimError) as none:
        signing.check_api_key(None, "k")
    assert (none.value.code, none.value.http_status) == (-2014, 401)
    with pytest.raises(SimError) as wrong:
        signing.check_api_key("x", "k")
    assert wrong.value.code == -2015


@pytest.mark.parametrize(
    ("timestamp", "window", "ok"),
    [
        (10_000, None, True),
        (10_999, None, True),  # up to 999 ms ahead is fine
        (11_000, None, False),  # 1000 ms ahead is not
        (5_000, None, True),  # exactly the default 5000 ms window
        (4_999, None, False),
        (1_000, "9000", True),
        (999, "9000", False),
    ],
)
def test_timestamp_window(timestamp: int, window: str | None, ok: bool) -> None:
    params = {"timestamp": str(timestamp)}
    if window:
        params["recvWindow"] = window
    if ok:
        signing.check_timestamp(params, 10_000)
    else:
        with pytest.raises(SimError) as err:
            signing.check_timestamp(params, 10_000)
        assert err.value.code == -1021


def test_fault_matching() -> None:
    rules = FaultSet()
    rules.add(Fault(method="POST", path="/fapi/v1/order", match={"side": "SELL"}, times=2))
    rules.add(Fault(path="/fapi/v1/algo*", kind="drop_before", times=None))
    assert rules.take("POST", "/fapi/v1/order", {"side": "BUY"}) is None
    assert rules.take("GET", "/fapi/v1/order", {"side": "SELL"}) is None
    assert rules.take("POST", "/fapi/v1/order", {"side": "SELL"}) is not None
    assert rules.take("POST", "/fapi/v1/order", {"side": "SELL"}) is not None
    assert rules.take("POST", "/fapi/v1/order", {"side": "SELL"}) is None  # used up
    for _ in range(3):
        hit = rules.take("DELETE", "/fapi/v1/algoOrder", {})
        assert hit is not None and hit.kind == "drop_before"
    rules.clear()
    assert rules.active() == []


def test_fault_skip_and_round_trip() -> None:
    rules = FaultSet()
    fault = rules.add(Fault(kind="timeout", delay_ms=50, skip=2))
    assert [rules.take("GET", "/x", {}) for _ in range(3)] == [None, None, fault]
    assert Fault.from_dict(fault.to_dict()) == fault
    assert Fault(kind="error").reply_status() == 400
    assert Fault(kind="http_status").reply_status() == 503
    assert Fault(kind="http_status", status=502).reply_status() == 502
    with pytest.raises(ValueError, match="kind"):
        Fault(kind="explode")
