"""ccxt exceptions -> trendbotd.errors, decided from facts, not from ccxt's message text.

Pure and free of ccxt imports: an exception is described by the ccxt class names in its
MRO, plus what the client subclass tagged on it (HTTP status, Binance error code,
Retry-After). The same failure maps differently for a read (retry may help) and for an
order-changing call, where anything that might have executed is OutcomeUnknownError.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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

# Attributes the client subclass sets on ccxt exceptions it raises from a reply.
ATTR_STATUS = "trendbot_http_status"
ATTR_CODE = "trendbot_code"
ATTR_RETRY_AFTER = "trendbot_retry_after_s"

CODE_TIMESTAMP = -1021
CODE_NO_SUCH_ORDER = -2013
CODE_UNKNOWN_ORDER = -2011
# "unknown error / execution status unknown / timeout": the request may have executed.
OUTCOME_UNKNOWN_CODES = frozenset({-1000, -1001, -1006, -1007, -1008})
RATE_LIMIT_CODES = frozenset({-1003, -1015})
AUTH_CODES = frozenset({-1002, -1022, -2014, -2015})
_RATE_LIMIT_KINDS = frozenset({"DDoSProtection", "RateLimitExceeded"})
_REJECTED_KINDS = frozenset(
    {"InvalidOrder", "BadRequest", "BadSymbol", "OperationRejected", "ArgumentsRequired"}
)
_CODE_IN_TEXT = re.compile(r'"code"\s*:\s*"?(-?\d+)')
_QUERY = re.compile(r"\?\S*")


@dataclass(frozen=True, slots=True)
class ErrorFacts:
    kinds: frozenset[str]  # names of the ccxt classes in the exception's MRO
    code: int | None  # the exchange's error code, if the reply carried one
    http_status: int | None
    retry_after_s: float | None
    message: str  # ccxt's text with query strings (timestamps, signatures) cut off

    def has(self, *kinds: str) -> bool:
        return any(k in self.kinds for k in kinds)


def facts_of(exc: BaseException) -> ErrorFacts:
    kinds = frozenset(k.__name__ for k in type(exc).__mro__ if k.__module__.split(".")[0] == "ccxt")
    text = str(exc)
    code = getattr(exc, ATTR_CODE, None)
    if code is None:
        m = _CODE_IN_TEXT.search(text)
        code = int(m.group(1)) if m else None
    status = getattr(exc, ATTR_STATUS, None)
    retry_after = getattr(exc, ATTR_RETRY_AFTER, None)
    return ErrorFacts(
        kinds=kinds,
        code=code if isinstance(code, int) else None,
        http_status=status if isinstance(status, int) else None,
        retry_after_s=float(retry_after) if isinstance(retry_after, int | float) else None,
        message=_QUERY.sub("?...", text),
    )


def is_rate_limit(f: ErrorFacts) -> bool:
    return f.has(*_RATE_LIMIT_KINDS) or f.http_status in (418, 429) or f.code in RATE_LIMIT_CODES


def may_have_executed(f: ErrorFacts) -> bool:
    """True when an order-changing request may have taken effect on the exchange."""
    if f.code == CODE_TIMESTAMP or f.has("InvalidNonce") or is_rate_limit(f):
        return False  # rejected at the gateway before execution
    if f.code in OUTCOME_UNKNOWN_CODES or (f.http_status is not None and f.http_status >= 500):
        return True
    # NetworkError: timeouts, resets, gateway pages; OperationFailed: -1000/-1001, bad body.
    return f.has("NetworkError", "OperationFailed")


def translate(  # noqa: PLR0911 - one return per outcome, in priority order
    exc: BaseException, *, what: str, order_changing: bool, client_order_id: str | None = None
) -> ExchangeError:
    """The trendbotd error for a ccxt exception raised by the call ``what``."""
    f = facts_of(exc)
    detail = f"{what}: {f.message}"
    if f.code is not None and str(f.code) not in f.message:
        detail += f" (code {f.code})"
    if f.code == CODE_TIMESTAMP or f.has("InvalidNonce"):
        return ClockSkewError(detail)
    if is_rate_limit(f):
        return RateLimitedError(detail, retry_after_s=f.retry_after_s)
    if f.has("AuthenticationError") or f.code in AUTH_CODES:
        return ExchangeAuthError(detail)
    if order_changing and may_have_executed(f):
        return OutcomeUnknownError(detail, client_order_id=client_order_id)
    if not order_changing and may_have_executed(f):
        return TransientExchangeError(detail)
    if f.has("OrderNotFound") or f.code in (CODE_NO_SUCH_ORDER, CODE_UNKNOWN_ORDER):
        return OrderNotFoundError(detail)
    if f.has("InsufficientFunds") or f.code == -2019:
        return InsufficientFundsError(detail, code=f.code)
    if f.code == -2022:
        return ReduceOnlyRejectedError(detail, code=f.code)
    if f.code == -4116 or f.has("DuplicateOrderId"):
        return DuplicateClientOrderIdError(detail, code=f.code)
    if order_changing and (f.has(*_REJECTED_KINDS) or f.code is not None):
        # The exchange answered with a reason: the order was refused as such.
        return InvalidOrderError(detail, code=f.code)
    return ExchangeError(detail)
