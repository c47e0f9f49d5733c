"""Building the real ccxt adapter against a running simulated exchange (test helper)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from trendbotd.adapters.ccxt_exchange import CcxtExchange
from trendbotd.adapters.clock import SystemClock
from trendbotd.core.clock import Clock
from trendbotd.core.domain import OrderRequest, OrderType, Side
from trendbotd.core.retry import RetryPolicy
from trendbotd.sim import SimExchange

SYMBOL = "BTC/USDT:USDT"
PRICE = Decimal(30000)  # the sim's price is pinned here so balances and fills are exact
FAST_RETRY = RetryPolicy(attempts=3, deadline_s=3, first_delay_s=0.01, max_delay_s=0.05)


def adapter(sim: SimExchange, *, clock: Clock | None = None, **overrides: Any) -> CcxtExchange:
    kwargs: dict[str, Any] = {
        "exchange_id": "binanceusdm",
        "api_key": sim.api_key,
        "api_secret": sim.api_secret,
        "base_url": sim.base_url,
        "demo": False,
        "recv_window_ms": 5000,
        "timeout_s": 2.0,
        "clock": clock or SystemClock(),
        "rate_limit": False,
        "read_retry": FAST_RETRY,
    }
    kwargs.update(overrides)
    return CcxtExchange(**kwargs)


def limit_buy(cid: str, *, amount: str = "0.01", price: str = "29000") -> OrderRequest:
    return OrderRequest(
        SYMBOL, Side.BUY, OrderType.LIMIT, Decimal(amount), cid, price=Decimal(price)
    )


def market(cid: str, side: Side = Side.BUY, *, amount: str = "0.01",
           reduce_only: bool = False) -> OrderRequest:  # fmt: skip
    return OrderRequest(
        SYMBOL, side, OrderType.MARKET, Decimal(amount), cid, reduce_only=reduce_only
    )


def stop(cid: str, *, amount: str = "0.01", trigger: str = "28000") -> OrderRequest:
    return OrderRequest(
        SYMBOL,
        Side.SELL,
        OrderType.STOP_MARKET,
        Decimal(amount),
        cid,
        stop_price=Decimal(trigger),
        reduce_only=True,
    )


def requests_to(sim: SimExchange, method: str, path: str) -> list[Any]:
    return [r for r in sim.requests if (r.method, r.path) == (method, path)]
