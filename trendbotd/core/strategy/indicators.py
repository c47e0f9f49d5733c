"""Technical indicators on float64 arrays (numpy; the recursive averages step in Python).

Every function returns an array as long as its input, NaN where the indicator is not
defined yet, and value ``i`` depends only on inputs ``0..i`` (causal), so the same
function serves a backtest over years and a live window of a few hundred bars.

Conventions (those of TA-Lib and most charting tools):

- ``ema``: alpha = 2 / (period + 1), seeded with the simple mean of the first
  ``period`` values, first value at index ``period - 1``.
- ``atr``: Wilder's smoothing (alpha = 1 / period) of the true range; the first true
  range is ``high - low`` (no previous close), the seed is the mean of the first
  ``period`` true ranges, first value at index ``period - 1``.
- ``rolling_max`` / ``rolling_min``: over the window ending at ``i`` (inclusive);
  ``donchian_high`` / ``donchian_low`` over the ``period`` bars *before* ``i``, which is
  what a breakout compares the current close against.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


def _as_float(values: FloatArray | list[float]) -> FloatArray:
    return np.ascontiguousarray(values, dtype=np.float64)


def _check_period(period: int) -> None:
    if period < 1:
        raise ValueError(f"period must be at least 1, not {period}")


def window_sums(values: FloatArray | list[float], period: int) -> FloatArray:
    """Sum of each window of ``period`` values, ``out[j] = sum(x[j : j + period])``.

    Every window is added up from its own first value to its last, one value at a time,
    so its sum depends only on its values: the same window inside a live slice of a few
    hundred bars and inside years of backtest history gives the same float to the last
    bit (numpy's pairwise sums and BLAS products choose their order by array length and
    memory alignment). Vectorised across windows: ``period`` passes over the array.
    """
    _check_period(period)
    x = _as_float(values)
    count = len(x) - period + 1
    if count <= 0:
        return np.empty(0)
    out = x[:count].copy()
    for k in range(1, period):
        out += x[k : k + count]
    return out


def smoothed(values: FloatArray, *, alpha: float, start: int, seed: float) -> FloatArray:
    """``y[start] = seed``; ``y[t] = y[t-1] + alpha * (x[t] - y[t-1])`` after; NaN before.

    Evaluated step by step in exactly that form (Python floats: IEEE double, no fused
    multiply-add), so ``y[t]`` depends only on the seed and ``x[start..t]``, never on how
    long the array is (a block-matrix form was faster but rounded by memory alignment).
    Runs seeded at different bars (a live window, a backtest from years back) still differ
    by what is left of their seeds' difference (``settle_bars``); runs from the same bar
    agree exactly. About 15 ms per 100,000 values.
    """
    x = _as_float(values)
    n = len(x)
    out = np.full(n, np.nan)
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], not {alpha}")
    if start < 0 or start >= n:
        return out
    state = float(seed)
    path = [state]
    keep = path.append
    for value in x[start + 1 :].tolist():
        state += alpha * (value - state)
        keep(state)
    out[start:] = path
    return out


def sma(values: FloatArray | list[float], period: int) -> FloatArray:
    """Simple moving average over the ``period`` values ending at each index."""
    _check_period(period)
    x = _as_float(values)
    out = np.full(len(x), np.nan)
    if len(x) >= period:
        out[period - 1 :] = window_sums(x, period) / period
    return out


def ema(values: FloatArray | list[float], period: int) -> FloatArray:
    """Exponential moving average, seeded with the SMA of the first ``period`` values."""
    _check_period(period)
    x = _as_float(values)
    if len(x) < period:
        return np.full(len(x), np.nan)
    seed = float(window_sums(x[:period], period)[0]) / period
    return smoothed(x, alpha=2.0 / (period + 1), start=period - 1, seed=seed)


def true_range(high: FloatArray, low: FloatArray, close: FloatArray) -> FloatArray:
    """``max(high - low, |high - prev close|, |low - prev close|)``; bar 0 is ``high - low``."""
    h, lo, c = _as_float(high), _as_float(low), _as_float(close)
    tr = h - lo
    if len(tr) > 1:
        prev = c[:-1]
        tr[1:] = np.maximum(tr[1:], np.maximum(np.abs(h[1:] - prev), np.abs(lo[1:] - prev)))
    return tr


def atr(high: FloatArray, low: FloatArray, close: FloatArray, period: int) -> FloatArray:
    """Average true range with Wilder's smoothing."""
    _check_period(period)
    tr = true_range(high, low, close)
    if len(tr) < period:
        return np.full(len(tr), np.nan)
    seed = float(window_sums(tr[:period], period)[0]) / period
    return smoothed(tr, alpha=1.0 / period, start=period - 1, seed=seed)


def _rolling_extreme(x: FloatArray, window: int, *, is_max: bool) -> FloatArray:
    # van Herk / Gil-Werman: per-block prefix and suffix extremes, O(n) for any window.
    n = len(x)
    out = np.full(n, np.nan)
    if n < window:
        return out
    if window == 1:
        out[:] = x
        return out
    fill = -np.inf if is_max else np.inf
    acc = np.maximum if is_max else np.minimum
    blocks = -(-n // window)
    padded = np.full(blocks * window, fill)
    padded[:n] = x
    grid = padded.reshape(blocks, window)
    prefix = acc.accumulate(grid, axis=1).ravel()
    suffix = acc.accumulate(grid[:, ::-1], axis=1)[:, ::-1].ravel()
    ends = np.arange(window - 1, n)
    out[window - 1 :] = acc(suffix[ends - window + 1], prefix[ends])
    return out


def rolling_max(values: FloatArray | list[float], window: int) -> FloatArray:
    """Highest value over the ``window`` values ending at each index."""
    _check_period(window)
    return _rolling_extreme(_as_float(values), window, is_max=True)


def rolling_min(values: FloatArray | list[float], window: int) -> FloatArray:
    """Lowest value over the ``window`` values ending at each index."""
    _check_period(window)
    return _rolling_extreme(_as_float(values), window, is_max=False)


def _shift_one(x: FloatArray) -> FloatArray:
    out = np.full(len(x), np.nan)
    out[1:] = x[:-1]
    return out


def donchian_high(high: FloatArray | list[float], period: int) -> FloatArray:
    """Highest high of the ``period`` bars before each bar (the bar itself excluded)."""
    return _shift_one(rolling_max(high, period))


def donchian_low(low: FloatArray | list[float], period: int) -> FloatArray:
    """Lowest low of the ``period`` bars before each bar (the bar itself excluded)."""
    return _shift_one(rolling_min(low, period))


def efficiency_ratio(values: FloatArray | list[float], period: int) -> FloatArray:
    """Kaufman's efficiency ratio: net move over ``period`` bars divided by the path
    length (sum of absolute bar-to-bar moves), in [0, 1]. Near 1 in a clean trend, near 0
    in chop; NaN for the first ``period`` values.

    Each path length is summed from its own window (``window_sums``), so a live window
    and a years-long backtest give bit-identical values.
    """
    _check_period(period)
    x = _as_float(values)
    out = np.full(len(x), np.nan)
    if len(x) <= period:
        return out
    net = np.abs(x[period:] - x[:-period])
    steps = np.abs(np.diff(x))
    path = window_sums(steps, period)
    with np.errstate(invalid="ignore", divide="ignore"):
        out[period:] = np.where(path > 0.0, net / path, 0.0)
    return out


def settle_bars(alpha: float, *, tolerance: float = 1e-4) -> int:
    """Bars after the seed until the seed's weight in a recursive average is <= tolerance.

    Two runs of ``ema``/``atr`` that start at different bars agree to within
    ``tolerance`` times their initial difference once this many bars have passed.
    """
    if not 0.0 < alpha < 1.0:
        return 0
    return math.ceil(math.log(tolerance) / math.log(1.0 - alpha))
