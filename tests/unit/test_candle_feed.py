"""CandleFeed: one full window, then top-ups of only the new candles; anything that does
not line up falls back to a full fetch."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from trendbotd.core.domain import Candle
from trendbotd.errors import TransientExchangeError
from trendbotd.trading.candle_feed import MAX_TOP_UP, CandleFeed

TF = 60_000


def candle(i: int) -> Candle:
    return Candle(i * TF, 100.0 + i, 101.0 + i, 99.0 + i, 100.5 + i, 1.0)


@dataclass
class CandleExchange:
    """Serves candles 0..forming (the last one still forming), like fetch_ohlcv."""

    forming: int = 0
    holes: set[int] = field(default_factory=set)
    calls: list[tuple[int | None, int]] = field(default_factory=list)
    fail: bool = False

    def fetch_candles(
        self, symbol: str, *, timeframe: str, since_ms: int | None, limit: int
    ) -> list[Candle]:
        self.calls.append((since_ms, limit))
        if self.fail:
            raise TransientExchangeError("fetch_ohlcv: timeout")
        rows = [candle(i) for i in range(self.forming + 1) if i not in self.holes]
        if since_ms is not None:
            return [c for c in rows if c.open_time_ms >= since_ms][:limit]
        return rows[-limit:]


def feed_for(exchange: CandleExchange) -> CandleFeed:
    return CandleFeed(exchange=exchange, timeframe="1m")  # type: ignore[arg-type]


def window_at(feed: CandleFeed, exchange: CandleExchange, last: int, need: int = 5) -> list[int]:
    exchange.forming = last + 1
    now = (last + 1) * TF + 1_500
    got = feed.window("X", need=need, last_open_ms=last * TF, now_ms=now)
    return [c.open_time_ms // TF for c in got]


def test_full_window_then_one_candle_per_close() -> None:
    ex = CandleExchange()
    feed = feed_for(ex)
    assert window_at(feed, ex, 10) == [6, 7, 8, 9, 10]
    assert ex.calls == [(None, 6)]  # the forming candle is fetched and dropped
    assert window_at(feed, ex, 11) == [7, 8, 9, 10, 11]
    assert ex.calls[-1] == (11 * TF, 2)
    assert window_at(feed, ex, 11) == [7, 8, 9, 10, 11], "same candle again: no request"
    assert len(ex.calls) == 2
    assert window_at(feed, ex, 14) == [10, 11, 12, 13, 14]  # three missed closes
    assert ex.calls[-1] == (12 * TF, 4)
    assert (feed.full_fetches, feed.top_ups) == (1, 2)


def test_a_gap_in_the_top_up_or_a_long_absence_refetches_in_full() -> None:
    ex = CandleExchange()
    feed = feed_for(ex)
    window_at(feed, ex, 10)
    ex.holes = {11}
    assert window_at(feed, ex, 12) == [7, 8, 9, 10, 12]  # full fetch: the engine sees the hole
    assert ex.calls[-1] == (None, 6)
    ex.holes = set()
    assert window_at(feed, ex, 13) == [9, 10, 11, 12, 13]  # holed window was not kept
    assert ex.calls[-1] == (None, 6)
    last = 13 + MAX_TOP_UP + 1
    assert window_at(feed, ex, last)[-1] == last
    assert ex.calls[-1] == (None, 6)


def test_a_longer_window_or_a_failed_fetch_keeps_nothing_stale() -> None:
    ex = CandleExchange()
    feed = feed_for(ex)
    window_at(feed, ex, 10)
    assert window_at(feed, ex, 11, need=8) == [4, 5, 6, 7, 8, 9, 10, 11]  # config reload
    assert ex.calls[-1] == (None, 9)
    ex.fail = True
    with pytest.raises(TransientExchangeError):
        window_at(feed, ex, 12, need=8)
    ex.fail = False
    assert window_at(feed, ex, 12, need=8) == [5, 6, 7, 8, 9, 10, 11, 12]
    assert ex.calls[-1] == (12 * TF, 2)  # the kept window is still good to top up
