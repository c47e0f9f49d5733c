"""Technical indicators on float64 arrays, vectorised with numpy.

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

import functools
import math

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

# Block length of the recursive filters: each output costs _BLOCK multiply-adds in one
# matrix product, and only one scalar step per block remains in Python.
_BLOCK = 128


def _as_float(values: FloatArray | list[float]) -> FloatArray:
    return np.ascontiguousarray(values, dtype=np.float64)


def _check_period(period: int) -> None:
    if period < 1:
        raise ValueError(f"period must be at least 1, not {period}")


@functools.lru_cache(maxsize=64)
def _filter_weights(alpha: float, block: int) -> tuple[FloatArray, FloatArray]:
    """(transposed response matrix, carry weights) of one block; read-only, cached."""
    decay = 1.0 - alpha
    k = np.arange(block)
    lag = k[None, :] - k[:, None]  # transposed: row = input position, column = output
    weights_t = np.where(lag >= 0, alpha * decay ** np.maximum(lag, 0), 0.0).astype(np.float64)
    carry_weight = (decay ** (k + 1)).astype(np.float64)
    weights_t.setflags(write=False)
    carry_weight.setflags(write=False)
    return weights_t, carry_weight


def smoothed(values: FloatArray, *, alpha: float, start: int, seed: float) -> FloatArray:
    """``y[start] = seed``; ``y[t] = y[t-1] + alpha * (x[t] - y[t-1])`` after; NaN before.

    The recursion is a linear filter, so it is evaluated in blocks: inside a block the
    response to the inputs is a lower-triangular matrix product, and the state carried in
    from the previous block decays as ``(1 - alpha) ** (k + 1)``. All weights are at most
    1, so nothing overflows however long the series is.
    """
    x = _as_float(values)
    n = len(x)
    out = np.full(n, np.nan)
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], not {alpha}")
    if start < 0 or start >= n:
        return out
    out[start] = seed
    rest = x[start + 1 :]
    m = len(rest)
    if m == 0:
        return out
    block = min(_BLOCK, m)
    blocks = -(-m // block)
    padded = np.zeros(blocks * block)
    padded[:m] = rest
    weights_t, carry_weight = _filter_weights(alpha, block)
    response = padded.reshape(blocks, block) @ weights_t
    carries = np.empty(blocks)
    state = seed
    last_weight = float(carry_weight[-1])
    for b, tail in enumerate(response[:, -1].tolist()):
        carries[b] = state
        state = tail + last_weight * state
    out[start + 1 :] = (response + carries[:, None] * carry_weight[None, :]).ravel()[:m]
    return out


def sma(values: FloatArray | list[float], period: int) -> FloatArray:
    """Simple moving average over the ``period`` values ending at each index."""
    _check_period(period)
    x = _as_float(values)
    out = np.full(len(x), np.nan)
    if len(x) >= period:
        out[period - 1 :] = np.lib.stride_tricks.sliding_window_view(x, period).mean(axis=1)
    return out


def ema(values: FloatArray | list[float], period: int) -> FloatArray:
    """Exponential moving average, seeded with the SMA of the first ``period`` values."""
    _check_period(period)
    x = _as_float(values)
    if len(x) < period:
        return np.full(len(x), np.nan)
    seed = float(x[:period].mean())
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
    seed = float(tr[:period].mean())
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

    Each path length is summed from its own window (not from a running cumulative sum),
    so a live window and a years-long backtest give bit-identical values.
    """
    _check_period(period)
    x = _as_float(values)
    out = np.full(len(x), np.nan)
    if len(x) <= period:
        return out
    net = np.abs(x[period:] - x[:-period])
    steps = np.abs(np.diff(x))
    path = np.lib.stride_tricks.sliding_window_view(steps, period).sum(axis=1)
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
