"""Closed candles per symbol for the live loop, fetched once and then topped up.

The first decision of a symbol needs ``required_history`` closed candles (hundreds); every
later one needs only the candle that just closed. Keeping the window and asking the
exchange only for what is new keeps the tick short (one small request instead of
re-downloading and re-parsing the whole window each candle). Anything that does not
line up -- a gap, a restart of the exchange's series, a changed window length -- falls
back to a full fetch, so the window the strategy sees is always the last ``need`` closed
candles, contiguous and ending at the candle being decided.

Windows of different symbols may be asked for from several threads at once, each with
an exchange client of its own (``source``): a symbol's window is only ever touched by
the one call asking for it.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field

from trendbotd.core.domain import Candle
from trendbotd.core.ports import Exchange
from trendbotd.core.strategy import closed_candles, timeframe_ms

# Beyond this many missing candles a full fetch is as cheap as a top-up.
MAX_TOP_UP = 50


@dataclass(slots=True)
class CandleFeed:
    exchange: Exchange
    timeframe: str
    _windows: dict[str, list[Candle]] = field(default_factory=dict)
    full_fetches: int = 0
    top_ups: int = 0
    _count_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def timeframe_ms(self) -> int:
        return timeframe_ms(self.timeframe)

    def window(
        self,
        symbol: str,
        *,
        need: int,
        last_open_ms: int,
        now_ms: int,
        source: Exchange | None = None,
    ) -> list[Candle]:
        """Up to ``need`` closed candles ending with the one opening at ``last_open_ms``;
        shorter or ending earlier only when the exchange has no more (the caller checks).
        Raises what the exchange raises; the cached window is then left as it was.
        ``source``: the client to ask (default: ``exchange``)."""
        exchange = source if source is not None else self.exchange
        cached = self._windows.get(symbol)
        if cached and len(cached) >= need:
            newest = cached[-1].open_time_ms
            if newest == last_open_ms:
                return cached[-need:]
            missing = (last_open_ms - newest) // self.timeframe_ms
            if 0 < missing <= MAX_TOP_UP:
                fresh = self._fetch(exchange, symbol, since_ms=newest + self.timeframe_ms,
                                    limit=missing + 1, now_ms=now_ms)  # fmt: skip
                if _continues(cached, fresh, self.timeframe_ms, last_open_ms):
                    with self._count_lock:
                        self.top_ups += 1
                    window = (cached + fresh)[-need:]
                    self._windows[symbol] = window
                    return window
        window = self._fetch(exchange, symbol, since_ms=None, limit=need + 1, now_ms=now_ms)
        window = window[-need:]
        with self._count_lock:
            self.full_fetches += 1
        if (
            window
            and window[-1].open_time_ms == last_open_ms
            and _contiguous(window, self.timeframe_ms)
        ):
            self._windows[symbol] = window
        else:
            self._windows.pop(symbol, None)  # stale or holed: ask in full next time
        return window

    def _fetch(
        self, exchange: Exchange, symbol: str, *, since_ms: int | None, limit: int, now_ms: int
    ) -> list[Candle]:
        rows = exchange.fetch_candles(
            symbol, timeframe=self.timeframe, since_ms=since_ms, limit=limit
        )
        return closed_candles(rows, now_ms=now_ms, timeframe_ms=self.timeframe_ms)


def _contiguous(candles: list[Candle], timeframe_ms: int) -> bool:
    return all(
        b.open_time_ms - a.open_time_ms == timeframe_ms for a, b in itertools.pairwise(candles)
    )


def _continues(
    cached: list[Candle], fresh: list[Candle], timeframe_ms: int, last_open_ms: int
) -> bool:
    return (
        bool(fresh)
        and fresh[0].open_time_ms == cached[-1].open_time_ms + timeframe_ms
        and fresh[-1].open_time_ms == last_open_ms
        and _contiguous(fresh, timeframe_ms)
    )
