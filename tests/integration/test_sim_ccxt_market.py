"""Public endpoints of the simulated exchange as real ccxt parses them."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from support.sim_ccxt import SimBinanceUSDM, client

from trendbotd.sim import SimConfig, SimExchange

SYMBOL = "BTC/USDT:USDT"
HOUR = 3_600_000


@pytest.fixture
def sim() -> Iterator[SimExchange]:
    with SimExchange(SimConfig(symbols=(SYMBOL, "ETH/USDT:USDT"), seed=7)) as s:
        yield s


@pytest.fixture
def ex(sim: SimExchange) -> SimBinanceUSDM:
    return client(sim)


def test_time_is_the_sims_server_time(sim: SimExchange, ex: SimBinanceUSDM) -> None:
    before = sim.server_time_ms()
    t = ex.fetch_time()
    assert before <= t <= sim.server_time_ms()


def test_markets_parse_as_linear_perpetuals(ex: SimBinanceUSDM) -> None:
    markets = ex.load_markets()
    assert set(markets) == {SYMBOL, "ETH/USDT:USDT"}
    m = markets[SYMBOL]
    assert (m["id"], m["type"], m["swap"], m["linear"], m["active"]) == (
        "BTCUSDT",
        "swap",
        True,
        True,
        True,
    )
    assert (m["settle"], m["quote"], m["base"]) == ("USDT", "USDT", "BTC")
    assert m["precision"]["amount"] == 0.001
    assert m["precision"]["price"] == 0.1
    assert m["limits"]["amount"]["min"] == 0.001
    assert m["limits"]["cost"]["min"] == 100
    assert m["limits"]["market"]["max"] == 120
    assert "STOP_MARKET" in m["info"]["orderTypes"]
    assert m["info"]["marginAsset"] == "USDT"


def test_only_exchange_hosts_are_the_sim(sim: SimExchange, ex: SimBinanceUSDM) -> None:
    assert all(url.startswith(sim.base_url + "/") for url in ex.urls["api"].values())


def test_klines_end_with_the_forming_bar(sim: SimExchange, ex: SimBinanceUSDM) -> None:
    candles = ex.fetch_ohlcv(SYMBOL, "1h", limit=50)
    now = sim.server_time_ms()
    assert len(candles) == 50
    opens = [c[0] for c in candles]
    assert opens == sorted(opens)
    assert all(b - a == HOUR for a, b in itertools.pairwise(opens))
    assert opens[-1] <= now < opens[-1] + HOUR
    for _t, o, h, low, c, v in candles:
        assert low <= min(o, c) <= max(o, c) <= h
        assert v >= 0
    # closed bars are continuous: each opens at the previous close
    assert all(a[4] == b[1] for a, b in itertools.pairwise(candles))


def test_klines_since_and_other_intervals(ex: SimBinanceUSDM) -> None:
    hourly = ex.fetch_ohlcv(SYMBOL, "1h", limit=10)
    since = hourly[0][0]
    again = ex.fetch_ohlcv(SYMBOL, "1h", since=since, limit=3)
    assert again == hourly[:3]
    four = ex.fetch_ohlcv(SYMBOL, "4h", limit=5)
    assert all(c[0] % (4 * HOUR) == 0 for c in four)
    quarter = ex.fetch_ohlcv(SYMBOL, "15m", limit=8)
    assert all(c[0] % 900_000 == 0 for c in quarter)
    # a closed 4h bar spans exactly its four hourly bars
    wide = ex.fetch_ohlcv(SYMBOL, "1h", since=four[-2][0], limit=4)
    assert four[-2][1] == wide[0][1]
    assert four[-2][4] == wide[-1][4]
    assert four[-2][2] == max(c[2] for c in wide)
    assert four[-2][3] == min(c[3] for c in wide)


def test_ticker_and_mark_price_agree_with_state(sim: SimExchange, ex: SimBinanceUSDM) -> None:
    price = float(sim.state.price("BTCUSDT"))
    ticker = ex.fetch_ticker(SYMBOL)
    assert ticker["last"] == pytest.approx(price, rel=0.01)
    raw = ex.fapiPublicGetPremiumIndex({"symbol": "BTCUSDT"})
    assert float(raw["markPrice"]) == pytest.approx(price, rel=0.01)
    prices = ex.fapiPublicV2GetTickerPrice()
    assert {p["symbol"] for p in prices} == {"BTCUSDT", "ETHUSDT"}


def test_pinned_price_shows_in_ticker_and_forming_candle(
    sim: SimExchange, ex: SimBinanceUSDM
) -> None:
    sim.account.set_price(SYMBOL, __import__("decimal").Decimal("12345.6"))
    assert ex.fetch_ticker(SYMBOL)["last"] == 12345.6
    assert ex.fetch_ohlcv(SYMBOL, "1h", limit=2)[-1][4] == 12345.6
