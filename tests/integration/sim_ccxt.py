"""Real ccxt ``binanceusdm`` pointed at a running simulated exchange (test helper).

Every entry of ``urls['api']`` is redirected to the sim's base URL with its path kept, so
no call can leak to a real host. The subclass also picks Binance's USD-M error table for
the loopback URL (ccxt chooses that table by host name; without it -2022, -4116, -2019
and -4164 would all surface as a plain ExchangeError).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import ccxt

from trendbotd.sim import SimExchange


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
