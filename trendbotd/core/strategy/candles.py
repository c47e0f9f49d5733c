"""Closed candles as parallel numpy arrays, the input of every strategy function."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from trendbotd.core.domain import Candle

_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def timeframe_ms(timeframe: str) -> int:
    """Bar length of a ccxt timeframe string: "1h" -> 3600000."""
    count, unit = timeframe[:-1], timeframe[-1:]
    if not count.isdigit() or unit not in _UNIT_MS or int(count) == 0:
        raise ValueError(f"not a timeframe: {timeframe!r}")
    return int(count) * _UNIT_MS[unit]


@dataclass(frozen=True, slots=True)
class CandleArrays:
    """OHLCV columns of CLOSED candles in ascending time; all arrays have one length.

    Never put the still-forming bar in here: use ``closed_candles`` on what the exchange
    returned first. ``open_time_ms`` is int64 UTC milliseconds, the rest float64.
    """

    open_time_ms: NDArray[np.int64]
    open: NDArray[np.float64]
    high: NDArray[np.float64]
    low: NDArray[np.float64]
    close: NDArray[np.float64]
    volume: NDArray[np.float64]

    def __post_init__(self) -> None:
        n = len(self.open_time_ms)
        for name in ("open", "high", "low", "close", "volume"):
            if len(getattr(self, name)) != n:
                raise ValueError(
                    f"candle column {name} has {len(getattr(self, name))} rows, not {n}"
                )

    def __len__(self) -> int:
        return len(self.open_time_ms)

    @classmethod
    def from_candles(cls, candles: Sequence[Candle]) -> CandleArrays:
        return cls(
            open_time_ms=np.fromiter((c.open_time_ms for c in candles), np.int64, len(candles)),
            open=np.fromiter((c.open for c in candles), np.float64, len(candles)),
            high=np.fromiter((c.high for c in candles), np.float64, len(candles)),
            low=np.fromiter((c.low for c in candles), np.float64, len(candles)),
            close=np.fromiter((c.close for c in candles), np.float64, len(candles)),
            volume=np.fromiter((c.volume for c in candles), np.float64, len(candles)),
        )

    def head(self, stop: int) -> CandleArrays:
        """The first ``stop`` candles (views, no copy)."""
        return CandleArrays(
            open_time_ms=self.open_time_ms[:stop],
            open=self.open[:stop],
            high=self.high[:stop],
            low=self.low[:stop],
            close=self.close[:stop],
            volume=self.volume[:stop],
        )

    def tail(self, count: int) -> CandleArrays:
        """The last ``count`` candles (views, no copy)."""
        start = max(0, len(self) - count)
        return CandleArrays(
            open_time_ms=self.open_time_ms[start:],
            open=self.open[start:],
            high=self.high[start:],
            low=self.low[start:],
            close=self.close[start:],
            volume=self.volume[start:],
        )


def closed_candles(candles: Sequence[Candle], *, now_ms: int, timeframe_ms: int) -> list[Candle]:
    """Only the candles whose bar has ended by ``now_ms`` (exchange time).

    Exchanges return the still-forming bar last; deciding on it would act on a price
    that can still change before the bar closes.
    """
    if timeframe_ms <= 0:
        raise ValueError(f"timeframe_ms must be positive, not {timeframe_ms}")
    return [c for c in candles if c.open_time_ms + timeframe_ms <= now_ms]
