"""The sim-exchange command as a real process, driven over the /sim/ control API."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ccxt
import pytest
from support.sim_ccxt import SimBinanceUSDM, point_at

SYMBOL = "BTC/USDT:USDT"


class Running:
    def __init__(self, proc: subprocess.Popen[str], base_url: str, api_key: str) -> None:
        self.proc, self.base_url, self.api_key = proc, base_url, api_key

    def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())


def _start(tmp_path: Path, *extra: str) -> Running:
    creds = tmp_path / "creds.toml"
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "trendbotd.sim.main", "--port", "0", "--seed", "3"),
            *("--credentials-out", str(creds), *extra),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines = [proc.stdout.readline().split() for _ in range(2)]
    values = dict(line for line in lines if len(line) == 2)
    return Running(proc, values["base_url"], values["api_key"])


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    r = _start(tmp_path)
    yield r
    if r.proc.poll() is None:
        r.proc.kill()
        r.proc.wait(5)


def test_prints_url_and_key_and_writes_secret_0600(running: Running, tmp_path: Path) -> None:
    creds = tmp_path / "creds.toml"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    secrets = tomllib.loads(creds.read_text())
    assert secrets["api_key"] == running.api_key
    assert len(secrets["api_secret"]) == 64
    assert running.base_url.startswith("http://127.0.0.1:")
    exchange = SimBinanceUSDM(
        {
            "apiKey": secrets["api_key"],
            "secret": secrets["api_secret"],
            "enableRateLimit": False,
            "options": {"fetchCurrencies": False},
        }
    )
    exchange.sim_base_url = running.base_url
    point_at(exchange, running.base_url)
    assert exchange.fetch_balance()["USDT"]["total"] == 10000
    # drive it from outside: pin the price, place an order, inspect the state
    running.control("POST", "/sim/price", {"symbol": SYMBOL, "price": "25000"})
    exchange.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "cli1"})
    state = running.control("GET", "/sim/state")
    assert state["positions"][0]["positionAmt"] == "0.010"
    assert state["orders"][0]["clientOrderId"] == "cli1"
    assert state["prices"]["BTCUSDT"] == "25000.0"
    running.control("POST", "/sim/position", {"symbol": SYMBOL, "amount": "0", "entry_price": "0"})
    assert running.control("GET", "/sim/state")["account"]["positions"] == []
    # faults and skew over HTTP
    running.control("POST", "/sim/faults", {"path": "/fapi/v3/account", "kind": "http_status"})
    assert running.control("GET", "/sim/faults")[0]["kind"] == "http_status"
    with pytest.raises(ccxt.ExchangeNotAvailable):
        exchange.fetch_balance()
    running.control("POST", "/sim/skew", {"skew_ms": 30000})
    with pytest.raises(ccxt.InvalidNonce):
        exchange.fetch_balance()
    running.control("POST", "/sim/skew", {"skew_ms": 0})
    running.control("POST", "/sim/hedge_mode", {"enabled": True})
    assert exchange.fetch_position_mode(SYMBOL)["hedged"] is True
    requests = running.control("GET", "/sim/requests")
    assert any(r["path"] == "/fapi/v1/order" and r["accepted"] for r in requests)
    with pytest.raises(urllib.error.HTTPError) as info:
        running.control("POST", "/sim/price", {"price": "1"})  # no symbol
    assert info.value.code == 400
    # SIGTERM: a clean stop with exit 0
    running.proc.send_signal(signal.SIGTERM)
    assert running.proc.wait(10) == 0


def test_sigint_stops_cleanly(running: Running) -> None:
    running.proc.send_signal(signal.SIGINT)
    assert running.proc.wait(10) == 0
    assert running.proc.stderr is not None
    assert "Traceback" not in running.proc.stderr.read()


def test_bad_arguments_exit_with_config_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "trendbotd.sim.main", "--csv", str(tmp_path / "missing.csv")],
        capture_output=True,
        check=False,
        text=True,
        timeout=30,
        env={**os.environ},
    )
    assert result.returncode == 78
    assert "missing.csv" in result.stderr
