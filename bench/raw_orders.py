"""The floor of "send an order": one signed POST /fapi/v1/order with plain ``requests``.

No ccxt, no journal, no decision: HMAC-SHA256 over the query, the API key header, a
kept-alive session, market orders alternating BUY/SELL so the position stays flat.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import tomllib
from pathlib import Path
from urllib.parse import urlencode

import requests


def read_credentials(path: Path) -> tuple[str, str]:
    data = tomllib.loads(path.read_text())
    return str(data["api_key"]), str(data["api_secret"])


def raw_order_round_trips(
    base_url: str, credentials: Path, *, symbol_id: str, quantity: str, count: int
) -> list[float]:
    """Seconds per signed market-order round trip, ``count`` of them (an even count leaves
    the position flat), after two discarded warm-up orders."""
    api_key, secret = read_credentials(credentials)
    seconds: list[float] = []
    with requests.Session() as session:
        session.headers["X-MBX-APIKEY"] = api_key
        for i in range(count + 2):
            query = urlencode(
                {
                    "symbol": symbol_id,
                    "side": "BUY" if i % 2 == 0 else "SELL",
                    "type": "MARKET",
                    "quantity": quantity,
                    "newClientOrderId": f"bench-raw-{time.time_ns()}-{i}",
                    "timestamp": time.time_ns() // 1_000_000,
                    "recvWindow": 5000,
                }
            )
            signature = hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
            url = f"{base_url}/fapi/v1/order?{query}&signature={signature}"
            started = time.perf_counter()
            reply = session.post(url, timeout=10)
            elapsed = time.perf_counter() - started
            if reply.status_code != 200:
                raise RuntimeError(f"raw order refused: {reply.status_code} {reply.text}")
            if i >= 2:
                seconds.append(elapsed)
    return seconds
