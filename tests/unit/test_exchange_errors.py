"""ccxt exception -> trendbotd error, for reads and for order-changing calls (table-driven).

The integration tests (tests/integration/test_exchange_faults.py) produce the same failures
for real through the simulated exchange; this table pins the decision itself.
"""

from __future__ import annotations

import pytest
from ccxt.base import errors as cx

from trendbotd.adapters.ccxt_errors import (
    ATTR_CODE,
    ATTR_RETRY_AFTER,
    ATTR_STATUS,
    facts_of,
    translate,
)
from trendbotd.adapters.retry import TokenBucket, retry_after_seconds
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


def err(cls: type[Exception], text: str = "", *, status: int | None = None,
        code: int | None = None, retry_after: float | None = None) -> Exception:  # fmt: skip
    e = cls(text or f"binanceusdm {cls.__name__}")
    if status is not None:
        setattr(e, ATTR_STATUS, status)
    if code is not None:
        setattr(e, ATTR_CODE, code)
    if retry_after is not None:
        setattr(e, ATTR_RETRY_AFTER, retry_after)
    return e


def body(code: int, msg: str = "x") -> str:
    return f'binanceusdm {{"code":{code},"msg":"{msg}"}}'


CASES = [
    # (ccxt exception, read -> class, order-changing -> class)
    (err(cx.RequestTimeout, "binanceusdm POST http://h/fapi/v1/order"), TransientExchangeError,
     OutcomeUnknownError),
    (err(cx.NetworkError, "connection reset"), TransientExchangeError, OutcomeUnknownError),
    (err(cx.ExchangeNotAvailable, "502 Bad Gateway", status=502), TransientExchangeError,
     OutcomeUnknownError),
    (err(cx.OperationFailed, body(-1001), status=503, code=-1001), TransientExchangeError,
     OutcomeUnknownError),
    (err(cx.OperationFailed, body(-1000), status=500, code=-1000), TransientExchangeError,
     OutcomeUnknownError),
    (err(cx.OperationFailed, body(-1006), status=500), TransientExchangeError, OutcomeUnknownError),
    (err(cx.RequestTimeout, body(-1007), status=408), TransientExchangeError, OutcomeUnknownError),
    (err(cx.ExchangeError, body(-9999), status=503), TransientExchangeError, OutcomeUnknownError),
    (err(cx.BadResponse, "unparseable"), TransientExchangeError, OutcomeUnknownError),
    (err(cx.InvalidNonce, body(-1021), status=400, code=-1021), ClockSkewError, ClockSkewError),
    (err(cx.DDoSProtection, "429", status=429, retry_after=7), RateLimitedError, RateLimitedError),
    (err(cx.RateLimitExceeded, body(-1003), status=429), RateLimitedError, RateLimitedError),
    (err(cx.DDoSProtection, "418 banned", status=418), RateLimitedError, RateLimitedError),
    (err(cx.AuthenticationError, body(-1022)), ExchangeAuthError, ExchangeAuthError),
    (err(cx.PermissionDenied, "has no operation privilege"), ExchangeAuthError, ExchangeAuthError),
    (err(cx.ExchangeError, body(-2015), status=401), ExchangeAuthError, ExchangeAuthError),
    (err(cx.OrderNotFound, body(-2013), code=-2013), OrderNotFoundError, OrderNotFoundError),
    (err(cx.OrderNotFound, body(-2011), code=-2011), OrderNotFoundError, OrderNotFoundError),
    (err(cx.InsufficientFunds, body(-2019), code=-2019), InsufficientFundsError,
     InsufficientFundsError),
    (err(cx.InvalidOrder, body(-2022), code=-2022), ReduceOnlyRejectedError,
     ReduceOnlyRejectedError),
    (err(cx.InvalidOrder, body(-4116), code=-4116), DuplicateClientOrderIdError,
     DuplicateClientOrderIdError),
    (err(cx.InvalidOrder, body(-4164), code=-4164), ExchangeError, InvalidOrderError),
    (err(cx.OrderImmediatelyFillable, body(-2021), code=-2021), ExchangeError, InvalidOrderError),
    (err(cx.BadRequest, body(-1111), code=-1111), ExchangeError, InvalidOrderError),
    # Even if ccxt picked the wrong table (plain ExchangeError), the code decides.
    (err(cx.ExchangeError, body(-2022), status=400), ReduceOnlyRejectedError,
     ReduceOnlyRejectedError),
    (err(cx.ExchangeError, body(-2019), status=400), InsufficientFundsError,
     InsufficientFundsError),
    (err(cx.ExchangeError, body(-4116), status=400), DuplicateClientOrderIdError,
     DuplicateClientOrderIdError),
    (err(cx.ExchangeError, body(-4061), status=400), ExchangeError, InvalidOrderError),
    (err(cx.NotSupported, "not supported"), ExchangeError, ExchangeError),
]  # fmt: skip


@pytest.mark.parametrize(("exc", "on_read", "on_order"), CASES, ids=lambda v: repr(v)[:40])
def test_translation(
    exc: Exception, on_read: type[ExchangeError], on_order: type[ExchangeError]
) -> None:
    read = translate(exc, what="fetch_balance", order_changing=False)
    assert type(read) is on_read
    order = translate(exc, what="create_order", order_changing=True, client_order_id="cid-1")
    assert type(order) is on_order
    if isinstance(order, OutcomeUnknownError):
        assert order.client_order_id == "cid-1"
    assert order.args[0].startswith("create_order: ")


def test_rate_limit_keeps_retry_after() -> None:
    e = translate(err(cx.DDoSProtection, status=429, retry_after=7), what="x", order_changing=True)
    assert isinstance(e, RateLimitedError)
    assert e.retry_after_s == 7


def test_invalid_order_keeps_the_code() -> None:
    e = translate(err(cx.InvalidOrder, body(-4164)), what="x", order_changing=True)
    assert isinstance(e, InvalidOrderError)
    assert e.code == -4164


def test_facts_read_the_code_from_the_text_and_cut_query_strings() -> None:
    f = facts_of(
        cx.ExchangeError('binanceusdm GET http://h/x?timestamp=1&signature=abc {"code": -2022}')
    )
    assert f.code == -2022
    assert "signature" not in f.message
    assert f.kinds >= {"ExchangeError", "BaseError"}
    assert facts_of(ValueError("x")).kinds == frozenset()


def test_retry_after_header_forms() -> None:
    assert retry_after_seconds({"Retry-After": "12"}, now_ms=0) == 12
    assert retry_after_seconds({"retry-after": "3"}, now_ms=0) == 3
    assert retry_after_seconds({}, now_ms=0) is None
    assert retry_after_seconds(None, now_ms=0) is None
    assert retry_after_seconds({"Retry-After": "soon"}, now_ms=0) is None
    at = retry_after_seconds({"Retry-After": "Thu, 01 Jan 1970 00:00:30 GMT"}, now_ms=10_000)
    assert at == pytest.approx(20)


def test_token_bucket_allows_a_burst_then_paces() -> None:
    bucket = TokenBucket(capacity=100, per_s=20, now_ms=0)
    assert bucket.reserve(30, now_ms=0) == 0
    assert bucket.reserve(70, now_ms=0) == 0  # the whole burst at once
    assert bucket.reserve(1, now_ms=0) == pytest.approx(0.05)  # then 1 unit per 50 ms
    assert bucket.reserve(1, now_ms=0) == pytest.approx(0.10)  # reservations queue up
    assert bucket.reserve(1, now_ms=1000) == 0  # 20 units back after a second (net 18)
    assert bucket.reserve(18, now_ms=1000) == pytest.approx(0.05)
    assert bucket.reserve(0, now_ms=60_000) == 0
    assert bucket.reserve(100, now_ms=60_000) == 0  # refilled only up to the capacity
    assert bucket.reserve(1, now_ms=60_000) > 0
    with pytest.raises(ValueError):
        TokenBucket(capacity=0, per_s=1, now_ms=0)
