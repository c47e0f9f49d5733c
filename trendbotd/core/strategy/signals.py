"""The trading decision as pure code, shared by the live loop and the backtest.

Two steps, so that a backtest over 100,000 bars costs one vectorised pass plus a cheap
scalar call per bar, while the live loop runs exactly the same code on its window:

1. ``compute_signals(candles, params)`` -- vectorised, position-independent: per closed
   bar the close, the ATR, an entry signal (+1 long, -1 short, 0 none) and the exit
   signals of a long and of a short.
2. ``decide_bar(bar, params, position)`` -- scalar, position-dependent: enter with an
   initial stop, exit, reverse, tighten the trailing stop, or hold.

``decide(candles, params, position)`` is both steps on the last bar: the live entry point.

Systems (``StrategyParams.kind``):

- ``ema_cross``: the fast EMA rising above the slow one by more than ``CROSS_BAND_ATR``
  ATRs enters long; falling below it by as much enters short (only with ``allow_short``).
  While the trend holds, a close above the highest high of the previous ``fast`` bars
  enters long again (after a stop-out, or a start in mid-trend); likewise for shorts.
  A long is exited while fast < slow - band (the bar that crosses reverses it to short
  when shorts are allowed); symmetrically for shorts. Inside the band nothing changes.
- ``donchian``: a close above the highest high of the previous ``breakout`` bars enters
  long, below the lowest low enters short. A long exits on a close below the lowest low
  of the previous ``exit_breakout`` bars; a short on a close above their highest high.

Both place the initial stop ``atr_stop_mult`` ATRs from the decision close and trail it
``trail_mult`` ATRs behind each later close, only ever in the position's favour.

All prices are floats as candles are; sizing rounds them to the market's steps in Decimal.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from enum import IntEnum, StrEnum
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from trendbotd.config import StrategyParams
from trendbotd.core.domain import Position
from trendbotd.core.strategy import indicators
from trendbotd.core.strategy.candles import CandleArrays

# A trailing stop moves only when it gains at least this many ATRs: every move is a
# cancel and re-place of the protective order on the exchange, so tiny moves are churn.
TRAIL_MIN_STEP_ATR = 0.1
# ema_cross: the fast EMA must clear the slow one by this many ATRs to count as a cross.
# Bar-to-bar noise around a flat level moves the EMAs far less than an ATR, so this dead
# band keeps the system out of chop without delaying a real trend by more than a bar or two.
CROSS_BAND_ATR = 0.25
# Warm-up: recursive averages (EMA, ATR) computed from different first bars agree to
# this fraction of their initial difference after ``required_history`` bars. Stops are
# rounded to the price tick, so a residue of 1e-4 of the seed error (a few cents on BTC)
# still moved a trailing stop by one tick now and then against a backtest started years
# earlier; at 1e-10 the residue is far below any tick.
SETTLE_TOLERANCE = 1e-10


class Direction(IntEnum):
    SHORT = -1
    FLAT = 0
    LONG = 1


class Action(StrEnum):
    HOLD = "hold"
    ENTER = "enter"  # flat -> ``direction`` at market, then place the stop at ``stop_price``
    EXIT = "exit"  # close the whole position at market and cancel its stop
    REVERSE = "reverse"  # close at market, then ENTER ``direction`` with ``stop_price``
    MOVE_STOP = "move_stop"  # replace the protective stop with one at ``stop_price``


@dataclass(frozen=True, slots=True)
class PositionView:
    """What decide needs to know about the current position of one symbol."""

    direction: Direction = Direction.FLAT
    entry_price: float | None = None
    stop_price: float | None = None  # the live protective stop, None if there is none

    @classmethod
    def from_position(
        cls, position: Position | None, *, stop_price: Decimal | None
    ) -> PositionView:
        if position is None or position.amount == 0:
            return FLAT
        direction = Direction.LONG if position.amount > 0 else Direction.SHORT
        return cls(
            direction=direction,
            entry_price=float(position.entry_price),
            stop_price=None if stop_price is None else float(stop_price),
        )


FLAT = PositionView()


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    direction: Direction = Direction.FLAT  # ENTER / REVERSE: the new position's side
    stop_price: float | None = None  # ENTER / REVERSE: initial stop; MOVE_STOP: new stop
    reason: str = ""

    @property
    def trades(self) -> bool:
        """True when the decision needs a market order (ENTER, EXIT, REVERSE)."""
        return self.action in (Action.ENTER, Action.EXIT, Action.REVERSE)


HOLD = Decision(Action.HOLD)


class BarSignal(NamedTuple):
    """Everything ``decide_bar`` reads about one closed bar."""

    open_time_ms: int
    close: float
    atr: float
    entry: int  # +1 long entry, -1 short entry, 0 none
    exit_long: bool
    exit_short: bool


@dataclass(frozen=True, slots=True)
class SignalArrays:
    """The position-independent part of the strategy, one row per closed bar."""

    open_time_ms: NDArray[np.int64]
    close: NDArray[np.float64]
    atr: NDArray[np.float64]
    entry: NDArray[np.int8]
    exit_long: NDArray[np.bool_]
    exit_short: NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.close)

    def at(self, index: int) -> BarSignal:
        return BarSignal(
            int(self.open_time_ms[index]),
            float(self.close[index]),
            float(self.atr[index]),
            int(self.entry[index]),
            bool(self.exit_long[index]),
            bool(self.exit_short[index]),
        )

    def rows(self) -> Iterator[BarSignal]:
        """All bars in order, as plain Python scalars (fast to iterate)."""
        columns = zip(
            self.open_time_ms.tolist(),
            self.close.tolist(),
            self.atr.tolist(),
            self.entry.tolist(),
            self.exit_long.tolist(),
            self.exit_short.tolist(),
            strict=True,
        )
        return map(BarSignal._make, columns)


def min_history(params: StrategyParams) -> int:
    """Closed candles below which ``decide`` only holds: the indicators are undefined."""
    if params.kind == "ema_cross":
        signal = params.slow + 1  # the slow EMA at the previous bar, to see a cross
    else:
        signal = max(params.breakout, params.exit_breakout) + 1
    if params.min_efficiency > 0.0:
        signal = max(signal, params.efficiency_period + 1)
    return max(signal, params.atr_period)


def required_history(params: StrategyParams) -> int:
    """Closed candles the live loop should pass to ``decide``.

    Beyond ``min_history``, the EMAs and the ATR need time to forget their seed: with
    this many bars the live values agree with a backtest that started years earlier to
    within ``SETTLE_TOLERANCE`` of the seed error, so both take the same decisions.
    Defaults: 627 for ema_cross (fast 20, slow 50, ATR 14), 325 for donchian.
    """
    atr_bars = params.atr_period + indicators.settle_bars(
        1.0 / params.atr_period, tolerance=SETTLE_TOLERANCE
    )
    need = max(min_history(params), atr_bars)
    if params.kind == "ema_cross":
        slow_bars = params.slow + 1
        slow_bars += indicators.settle_bars(2.0 / (params.slow + 1), tolerance=SETTLE_TOLERANCE)
        need = max(need, slow_bars)
    return need


def _previous(x: NDArray[np.bool_]) -> NDArray[np.bool_]:
    out = np.zeros(len(x), dtype=np.bool_)
    out[1:] = x[:-1]
    return out


def compute_signals(candles: CandleArrays, params: StrategyParams) -> SignalArrays:
    """Entry and exit signals for every bar; row ``i`` depends only on candles ``0..i``."""
    close = candles.close
    atr = indicators.atr(candles.high, candles.low, close, params.atr_period)
    with np.errstate(invalid="ignore"):  # NaN during warm-up compares False: no signal
        if params.kind == "ema_cross":
            diff = indicators.ema(close, params.fast) - indicators.ema(close, params.slow)
            band = CROSS_BAND_ATR * atr
            up, down = diff > band, diff < -band
            defined_before = _previous(~np.isnan(diff - band))
            # the cross itself, or a trend resuming: a close beyond the last `fast` bars
            resume_up = up & (close > indicators.donchian_high(candles.high, params.fast))
            resume_down = down & (close < indicators.donchian_low(candles.low, params.fast))
            long_entry = (up & ~_previous(up) & defined_before) | resume_up
            short_entry = (down & ~_previous(down) & defined_before) | resume_down
            exit_long, exit_short = down, up
        else:
            long_entry = close > indicators.donchian_high(candles.high, params.breakout)
            short_entry = close < indicators.donchian_low(candles.low, params.breakout)
            exit_long = close < indicators.donchian_low(candles.low, params.exit_breakout)
            exit_short = close > indicators.donchian_high(candles.high, params.exit_breakout)
    if params.min_efficiency > 0.0:
        with np.errstate(invalid="ignore"):  # NaN during warm-up: no entry
            trending = (
                indicators.efficiency_ratio(close, params.efficiency_period)
                >= params.min_efficiency
            )
        long_entry &= trending
        short_entry &= trending
    entry = long_entry.astype(np.int8) - short_entry.astype(np.int8)
    return SignalArrays(
        open_time_ms=candles.open_time_ms,
        close=close,
        atr=atr,
        entry=entry,
        exit_long=exit_long,
        exit_short=exit_short,
    )


def _usable(atr: float) -> bool:
    return math.isfinite(atr) and atr > 0.0


def _enter(
    bar: BarSignal, params: StrategyParams, direction: Direction, action: Action
) -> Decision:
    if not _usable(bar.atr):
        return Decision(Action.HOLD, reason=f"no usable ATR ({bar.atr}) for a stop")
    stop = bar.close - direction * params.atr_stop_mult * bar.atr
    if stop <= 0.0:
        return Decision(Action.HOLD, reason=f"initial stop {stop:.8g} would not be positive")
    side = "long" if direction is Direction.LONG else "short"
    why = f"{side} entry signal" if action is Action.ENTER else f"reverse to {side}"
    return Decision(action, direction, stop, why)


def _decide_flat(bar: BarSignal, params: StrategyParams) -> Decision:
    if bar.entry > 0:
        return _enter(bar, params, Direction.LONG, Action.ENTER)
    if bar.entry < 0 and params.allow_short:
        return _enter(bar, params, Direction.SHORT, Action.ENTER)
    return HOLD


def _manage_stop(bar: BarSignal, params: StrategyParams, position: PositionView) -> Decision:
    sign = int(position.direction)
    stop = position.stop_price
    if stop is None:
        initial = bar.close - sign * params.atr_stop_mult * bar.atr
        if initial > 0.0:
            return Decision(Action.MOVE_STOP, position.direction, initial, "position has no stop")
        return Decision(Action.HOLD, reason="position has no stop and none is positive")
    trail = bar.close - sign * params.trail_mult * bar.atr
    if (trail - stop) * sign >= TRAIL_MIN_STEP_ATR * bar.atr and trail > 0.0:
        return Decision(Action.MOVE_STOP, position.direction, trail, "trail")
    return HOLD


def _decide_open(bar: BarSignal, params: StrategyParams, position: PositionView) -> Decision:
    sign = int(position.direction)  # +1 long, -1 short
    opposite = Direction.SHORT if sign > 0 else Direction.LONG
    if bar.entry == -sign and (opposite is Direction.LONG or params.allow_short):
        reverse = _enter(bar, params, opposite, Action.REVERSE)
        if reverse.action is Action.REVERSE:
            return reverse
        return Decision(Action.EXIT, reason=f"opposite entry signal; {reverse.reason}")
    if bar.exit_long if sign > 0 else bar.exit_short:
        return Decision(Action.EXIT, reason="exit signal")
    stop = position.stop_price
    # The exchange stop should have fired; a close beyond it means it is missing or late.
    if stop is not None and (bar.close - stop) * sign <= 0.0:
        return Decision(Action.EXIT, reason=f"close {bar.close:.8g} beyond stop {stop:.8g}")
    if not _usable(bar.atr):
        return HOLD
    return _manage_stop(bar, params, position)


def decide_bar(bar: BarSignal, params: StrategyParams, position: PositionView) -> Decision:
    """The decision at the close of ``bar`` for ``position``. Pure; called once per closed bar."""
    if not math.isfinite(bar.close):
        return HOLD
    if position.direction is Direction.FLAT:
        return _decide_flat(bar, params)
    return _decide_open(bar, params, position)


def decide(candles: CandleArrays, params: StrategyParams, position: PositionView) -> Decision:
    """The live entry point: the decision at the last of ``candles`` (all CLOSED).

    Pass at least ``required_history(params)`` candles; with fewer than
    ``min_history(params)`` this holds.
    """
    need = min_history(params)
    if len(candles) < need:
        return Decision(Action.HOLD, reason=f"warming up: {len(candles)} of {need} candles")
    return decide_bar(compute_signals(candles, params).at(-1), params, position)
