"""Real ccxt ``binanceusdm`` pointed at a running simulated exchange (test helper).

Every entry of ``urls['api']`` is redirected to the sim's base URL with its path kept, so
no call can leak to a real host. The subclass also picks Binance's USD-M error table for
the loopback URL (ccxt chooses that table by host name; without it -2022, -4116, -2019
and -4164 would all surface as a plain ExchangeError).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import ccxt

from trendbotd.core.clock import ManualClock
from trendbotd.sim import SimExchange

HOUR = 3_600_000


class SimBinanceUSDM(ccxt.binanceusdm):  # type: ignore[misc]
    sim_base_url = ""

    def get_exceptions_by_url(self, url: str | None, exactOrBroad: str) -> dict[str, Any]:  # noqa: N803
        if self.sim_base_url and url and url.startswith(self.sim_base_url + "/fapi/"):
            linear = self.safe_dict(self.exceptions, "linear", {})
            return self.safe_dict(linear, exactOrBroad, {})
        return super().get_exceptions_by_url(url, exactOrBroad)  # type: ignore[no-any-return]


def point_at(exchange: ccxt.Exchange, base_url: str) -> None:
    """Send every API section to ``base_url``, keeping each section's path prefix."""
    for name, url in list(exchange.urls["api"].items()):
        exchange.urls["api"][name] = base_url + urlsplit(url).path


def client(sim: SimExchange, **options: Any) -> SimBinanceUSDM:
    config: dict[str, Any] = {
        "apiKey": sim.api_key,
        "secret": sim.api_secret,
        "enableRateLimit": False,
        "timeout": 5000,
        "options": {"fetchCurrencies": False, **options.pop("options", {})},
    }
    config.update(options)
    exchange = SimBinanceUSDM(config)
    exchange.sim_base_url = sim.base_url
    point_at(exchange, sim.base_url)
    return exchange


def resync(exchange: SimBinanceUSDM) -> None:
    """Re-learn the sim's clock after a test moved it (ccxt signs with local time + offset)."""
    exchange.load_time_difference()


def market_client(sim: SimExchange) -> SimBinanceUSDM:
    """A client that has loaded the sim's markets, as most tests start."""
    exchange = client(sim)
    exchange.load_markets()
    return exchange


def connect(sim: SimExchange) -> SimBinanceUSDM:
    """A market client on the sim's current clock (after a test moved it)."""
    exchange = market_client(sim)
    resync(exchange)
    return exchange


def mid_bar_clock() -> ManualClock:
    """A hand-moved clock half way through the current hour: real time of day, mid-bar."""
    now = time.time_ns() // 1_000_000
    return ManualClock(now - now % HOUR + HOUR // 2)


def run_workers(
    work: Callable[[int], None], *, workers: int, timeout: float
) -> list[BaseException]:
    """``work(worker)`` on ``workers`` threads at once; what they raised, for the test to assert."""
    failures: list[BaseException] = []

    def run(worker: int) -> None:
        try:
            work(worker)
        except BaseException as e:  # collected for the caller to assert
            failures.append(e)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return failures


def place_stop_loss(
    exchange: SimBinanceUSDM, symbol: str, amount: float, stop: float, *, cid: str
) -> dict[str, Any]:
    """A reduce-only stop-market sell (an algo order) that protects a long."""
    params = {"stopLossPrice": stop, "reduceOnly": True, "clientOrderId": cid}
    return exchange.create_order(symbol, "market", "sell", amount, None, params)  # type: ignore[no-any-return]
