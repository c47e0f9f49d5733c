"""Trading decisions on hand-built candle series, walked bar by bar as the live loop does."""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from decimal import Decimal

import numpy as np
import pytest

from trendbotd.config import StrategyParams
from trendbotd.core.domain import Candle, Position
from trendbotd.core.strategy import indicators
from trendbotd.core.strategy.candles import CandleArrays, closed_candles, timeframe_ms
from trendbotd.core.strategy.signals import (
    FLAT,
    HOLD,
    Action,
    BarSignal,
    Decision,
    Direction,
    PositionView,
    compute_signals,
    decide,
    decide_bar,
    min_history,
    required_history,
)

HOUR = 3_600_000
EMA = StrategyParams(
    kind="ema_cross", fast=3, slow=8, atr_period=3, atr_stop_mult=2.0, min_efficiency=0.0
)
DONCHIAN = StrategyParams(
    kind="donchian", breakout=10, exit_breakout=5, atr_period=3, min_efficiency=0.0
)


def make_candles(closes: list[float], *, wick: float = 0.3) -> CandleArrays:
    """Each bar opens at the previous close; wicks stick out ``wick`` beyond the body."""
    opens = [closes[0], *closes[:-1]]
    return CandleArrays(
        open_time_ms=np.arange(len(closes), dtype=np.int64) * HOUR,
        open=np.array(opens),
        high=np.array([max(o, c) + wick for o, c in zip(opens, closes, strict=True)]),
        low=np.array([min(o, c) - wick for o, c in zip(opens, closes, strict=True)]),
        close=np.array(closes, dtype=np.float64),
        volume=np.ones(len(closes)),
    )


def flat(n: int, level: float = 100.0) -> list[float]:
    """Chop: a level with a small repeating wobble (period 4, amplitude 0.2)."""
    return [level + (0.2, -0.1, 0.1, -0.2)[i % 4] for i in range(n)]


def ramp(start: float, step: float, n: int) -> list[float]:
    return [start + step * (i + 1) for i in range(n)]


def apply(position: PositionView, decision: Decision) -> PositionView:
    """What the position becomes once a decision is carried out (fills ignored)."""
    if decision.action is Action.EXIT:
        return FLAT
    if decision.action in (Action.ENTER, Action.REVERSE):
        return PositionView(decision.direction, None, decision.stop_price)
    if decision.action is Action.MOVE_STOP:
        return dataclasses.replace(position, stop_price=decision.stop_price)
    return position


def walk(candles: CandleArrays, params: StrategyParams) -> list[tuple[int, Decision]]:
    """The live loop: at each close, decide on the closed candles so far."""
    position, out = FLAT, []
    for k in range(1, len(candles) + 1):
        decision = decide(candles.head(k), params, position)
        if decision.action is not Action.HOLD:
            out.append((k - 1, decision))
        position = apply(position, decision)
    return out


def entries(steps: list[tuple[int, Decision]]) -> list[tuple[int, Direction]]:
    return [(i, d.direction) for i, d in steps if d.action in (Action.ENTER, Action.REVERSE)]


def stop_prices(steps: list[tuple[int, Decision]]) -> list[float]:
    """The stop after each entry or trailing move, in order."""
    moves = [d.stop_price for _, d in steps if d.action in (Action.ENTER, Action.MOVE_STOP)]
    return [p for p in moves if p is not None]


def bar(
    close: float, atr: float, *, entry: int = 0, xl: bool = False, xs: bool = False
) -> BarSignal:
    return BarSignal(0, close, atr, entry, xl, xs)


# --- whole series ---


@pytest.mark.parametrize("params", [EMA, DONCHIAN], ids=["ema_cross", "donchian"])
def test_clean_uptrend_enters_long_with_an_atr_stop(params: StrategyParams) -> None:
    closes = flat(30) + ramp(100.0, 1.0, 25)
    candles = make_candles(closes)
    steps = walk(candles, params)
    assert [d for _, d in entries(steps)] == [Direction.LONG], "one long entry, nothing else"
    index, first = next((i, d) for i, d in steps if d.action is Action.ENTER)
    assert 30 <= index <= 33, "enters within a few bars of the trend's start, not before"
    atr = indicators.atr(candles.high, candles.low, candles.close, params.atr_period)[index]
    assert first.stop_price == pytest.approx(closes[index] - 2.0 * atr)
    assert all(d.direction is not Direction.SHORT for _, d in steps)


@pytest.mark.parametrize("params", [EMA, DONCHIAN], ids=["ema_cross", "donchian"])
def test_clean_downtrend_enters_short(params: StrategyParams) -> None:
    closes = flat(30) + ramp(100.0, -1.0, 25)
    candles = make_candles(closes)
    found = entries(walk(candles, params))
    assert found and found[0][1] is Direction.SHORT and 30 <= found[0][0] <= 33
    first = next(d for _, d in walk(candles, params) if d.action is Action.ENTER)
    assert first.stop_price is not None and first.stop_price > closes[found[0][0]]


@pytest.mark.parametrize("params", [EMA, DONCHIAN], ids=["ema_cross", "donchian"])
def test_no_shorts_when_not_allowed(params: StrategyParams) -> None:
    longs_only = dataclasses.replace(params, allow_short=False)
    candles = make_candles(flat(30) + ramp(100.0, -1.0, 25))
    assert entries(walk(candles, longs_only)) == []


@pytest.mark.parametrize("params", [EMA, DONCHIAN], ids=["ema_cross", "donchian"])
def test_chop_takes_no_trades(params: StrategyParams) -> None:
    assert walk(make_candles(flat(300)), params) == []


@pytest.mark.parametrize("params", [EMA, DONCHIAN], ids=["ema_cross", "donchian"])
def test_trend_filter_blocks_entries_in_a_wide_zigzag_but_not_in_a_trend(
    params: StrategyParams,
) -> None:
    filtered = dataclasses.replace(params, efficiency_period=32, min_efficiency=0.3)
    # +-8 swings over 16 bars: the channels break and the EMAs cross, but over 32 bars
    # (two swings) the net move is nil against a path of 4 x 16
    zigzag = [100.0 + 8 * math.sin(i * math.pi / 8) for i in range(230)]
    assert entries(walk(make_candles(zigzag), params)), "unfiltered, the zigzag trades"
    assert entries(walk(make_candles(zigzag), filtered)) == []
    trend = flat(30) + ramp(100.0, 1.0, 40)
    assert [d for _, d in entries(walk(make_candles(trend), filtered))] == [Direction.LONG]


def test_trend_filter_never_blocks_exits_or_stops() -> None:
    filtered = dataclasses.replace(EMA, efficiency_period=20, min_efficiency=0.99)
    candles = make_candles(flat(30) + ramp(100.0, 1.0, 10) + ramp(110.0, -1.0, 20))
    long = PositionView(Direction.LONG, 100.0, 90.0)
    decided = [decide(candles.head(k), filtered, long).action for k in range(40, len(candles))]
    assert Action.EXIT in decided or Action.MOVE_STOP in decided
    assert Action.ENTER not in decided and Action.REVERSE not in decided


def test_ema_cross_reenters_a_running_trend_on_a_new_high_only() -> None:
    # flat in mid-trend (stopped out, or just started): a new `fast`-bar high re-enters,
    # a pullback inside the trend does not
    closes = flat(30) + ramp(100.0, 1.0, 30)
    assert decide(make_candles(closes), EMA, FLAT).direction is Direction.LONG
    pullback = [*closes, 128.5, 128.0]
    assert decide(make_candles(pullback), EMA, FLAT) is HOLD
    resumed = [*pullback, 131.0]
    assert decide(make_candles(resumed), EMA, FLAT).action is Action.ENTER


def test_reverses_on_an_opposite_cross_and_only_exits_without_shorts() -> None:
    closes = flat(30) + ramp(100.0, 1.0, 20) + ramp(120.0, -1.0, 30)
    candles = make_candles(closes)
    found = entries(walk(candles, EMA))
    assert [d for _, d in found][:2] == [Direction.LONG, Direction.SHORT]
    reverse = next(d for _, d in walk(candles, EMA) if d.action is Action.REVERSE)
    assert reverse.direction is Direction.SHORT
    no_shorts = walk(candles, dataclasses.replace(EMA, allow_short=False))
    assert [d.action for _, d in no_shorts if d.action is not Action.MOVE_STOP] == [
        Action.ENTER,
        Action.EXIT,
    ]


def test_trailing_stop_moves_only_in_the_favourable_direction() -> None:
    # Up, a pause that pulls back a little, then up again: the stop must never step down.
    closes = flat(30) + ramp(100.0, 1.0, 20) + [119.0, 118.5, 118.0, 118.8] + ramp(119.0, 1.0, 10)
    steps = walk(make_candles(closes), EMA)
    stops = stop_prices(steps)
    assert len(stops) >= 5, "the stop trailed the trend"
    assert all(b > a for a, b in itertools.pairwise(stops))
    assert all(d.direction is Direction.LONG for _, d in steps)


def test_trailing_stop_of_a_short_only_moves_down() -> None:
    closes = flat(30) + ramp(100.0, -1.0, 30)
    steps = walk(make_candles(closes), EMA)
    stops = stop_prices(steps)
    assert len(stops) >= 3
    assert all(b < a for a, b in itertools.pairwise(stops))


# --- the scalar rules one by one ---


def test_flat_with_entry_signal_but_unusable_atr_holds() -> None:
    for atr in (math.nan, 0.0):
        decision = decide_bar(bar(100.0, atr, entry=1), EMA, FLAT)
        assert decision.action is Action.HOLD and "ATR" in decision.reason


def test_long_entry_whose_stop_would_be_negative_holds() -> None:
    decision = decide_bar(bar(1.0, 5.0, entry=1), EMA, FLAT)
    assert decision.action is Action.HOLD and "positive" in decision.reason


def test_trail_never_loosens_and_ignores_tiny_steps() -> None:
    long = PositionView(Direction.LONG, 100.0, 95.0)
    # candidate 100 - 3*2 = 94 is below the current stop 95: hold, never lower it
    assert decide_bar(bar(100.0, 2.0), EMA, long) is HOLD
    # candidate 101.1 - 6 = 95.1 gains 0.1 < 0.1 ATR (0.2): too small to bother the exchange
    assert decide_bar(bar(101.1, 2.0), EMA, long) is HOLD
    moved = decide_bar(bar(102.0, 2.0), EMA, long)
    assert moved.action is Action.MOVE_STOP and moved.stop_price == pytest.approx(96.0)
    short = PositionView(Direction.SHORT, 100.0, 105.0)
    assert decide_bar(bar(100.0, 2.0), EMA, short) is HOLD  # candidate 106 is looser
    moved = decide_bar(bar(98.0, 2.0), EMA, short)
    assert moved.action is Action.MOVE_STOP and moved.stop_price == pytest.approx(104.0)


def test_close_beyond_the_stop_exits() -> None:
    decision = decide_bar(bar(94.0, 2.0), EMA, PositionView(Direction.LONG, 100.0, 95.0))
    assert decision.action is Action.EXIT and "beyond stop" in decision.reason


def test_position_without_a_stop_gets_one() -> None:
    decision = decide_bar(bar(100.0, 2.0), EMA, PositionView(Direction.LONG, 100.0, None))
    assert decision.action is Action.MOVE_STOP and decision.stop_price == pytest.approx(96.0)


def test_exit_signal_and_reverse_rules() -> None:
    long = PositionView(Direction.LONG, 100.0, 90.0)
    assert decide_bar(bar(100.0, 2.0, xl=True), EMA, long).action is Action.EXIT
    assert decide_bar(bar(100.0, 2.0, xs=True), EMA, long).action is not Action.EXIT
    rev = decide_bar(bar(100.0, 2.0, entry=-1, xl=True), EMA, long)
    assert (rev.action, rev.direction, rev.stop_price) == (Action.REVERSE, Direction.SHORT, 104.0)
    no_shorts = dataclasses.replace(EMA, allow_short=False)
    assert decide_bar(bar(100.0, 2.0, entry=-1, xl=True), no_shorts, long).action is Action.EXIT
    # a short held while shorts are disabled still reverses to long: longs are always allowed
    short = PositionView(Direction.SHORT, 100.0, 110.0)
    assert decide_bar(bar(100.0, 2.0, entry=1, xs=True), no_shorts, short).action is Action.REVERSE
    # reversal without a usable ATR still gets out
    assert decide_bar(bar(100.0, math.nan, entry=-1), EMA, long).action is Action.EXIT


def test_position_view_from_domain_position() -> None:
    assert PositionView.from_position(None, stop_price=None) is FLAT
    zero = Position("BTC/USDT:USDT", Decimal(0), Decimal(0))
    assert PositionView.from_position(zero, stop_price=Decimal(1)) is FLAT
    short = Position("BTC/USDT:USDT", Decimal("-0.5"), Decimal("30000"))
    view = PositionView.from_position(short, stop_price=Decimal("31000.5"))
    assert view == PositionView(Direction.SHORT, 30000.0, 31000.5)


# --- closed candles only, history, and live == backtest ---


def test_forming_candle_is_dropped_before_deciding() -> None:
    closes = flat(30) + ramp(100.0, 0.0, 5)
    candles = [Candle(i * HOUR, c, c + 0.3, c - 0.3, c, 1.0) for i, c in enumerate(closes)]
    forming = Candle(len(closes) * HOUR, 100.0, 200.0, 100.0, 200.0, 1.0)  # a huge spike
    now = len(closes) * HOUR + HOUR // 2  # halfway through the forming bar
    closed = closed_candles([*candles, forming], now_ms=now, timeframe_ms=HOUR)
    assert closed == candles
    assert decide(CandleArrays.from_candles(closed), DONCHIAN, FLAT) is HOLD
    # had the spike been taken as closed, it would have been a breakout
    spiked = decide(CandleArrays.from_candles([*candles, forming]), DONCHIAN, FLAT)
    assert spiked.action is Action.ENTER
    # the bar ending exactly now is closed
    at_close = closed_candles(
        [*candles, forming], now_ms=(len(closes) + 1) * HOUR, timeframe_ms=HOUR
    )
    assert at_close[-1] == forming


def test_signals_of_a_prefix_equal_the_full_series_rows() -> None:
    closes = flat(30) + ramp(100.0, 1.0, 20) + ramp(120.0, -1.0, 30) + flat(20, 90.0)
    candles = make_candles(closes)
    for params in (EMA, DONCHIAN):
        full = compute_signals(candles, params)
        for k in range(1, len(candles) + 1):
            row = compute_signals(candles.head(k), params).at(-1)
            expect = full.at(k - 1)
            assert row[:2] == expect[:2] and row[3:] == expect[3:], f"bar {k - 1} looked ahead"
            assert row.atr == pytest.approx(expect.atr, rel=1e-12, nan_ok=True)


def test_history_lengths() -> None:
    assert min_history(StrategyParams()) == 151  # the trend filter's window + 1
    assert min_history(StrategyParams(min_efficiency=0.0)) == 51
    assert required_history(StrategyParams()) == 627
    assert required_history(StrategyParams(kind="donchian")) == 325
    assert min_history(DONCHIAN) == 11
    short = make_candles(flat(10))
    held = decide(short, DONCHIAN, FLAT)
    assert held.action is Action.HOLD and "warming up" in held.reason


def random_walk(n: int, seed: int) -> CandleArrays:
    rng = random.Random(seed)
    closes, price = [], 100.0
    for i in range(n):
        drift = 0.004 if (i // 400) % 2 == 0 else -0.004  # alternating trends
        price *= math.exp(drift + rng.gauss(0, 0.01))
        closes.append(price)
    return make_candles(closes, wick=0.2)


@pytest.mark.parametrize("kind", ["ema_cross", "donchian"])
def test_live_window_decides_like_a_backtest_from_the_start(kind: str) -> None:
    params = StrategyParams(kind=kind)  # type: ignore[arg-type]
    candles = random_walk(2000, seed=kind == "donchian")
    window = required_history(params)
    full = compute_signals(candles, params)
    views = [FLAT, PositionView(Direction.LONG, 1.0, 1e-9), PositionView(Direction.SHORT, 1.0, 1e9)]
    for k in range(window, len(candles) + 1):
        live_rows = candles.head(k).tail(window)
        for view in views:
            live = decide(live_rows, params, view)
            backtest = decide_bar(full.at(k - 1), params, view)
            assert (live.action, live.direction) == (backtest.action, backtest.direction), k
            if live.stop_price is not None:
                # ATR seeds differ: within SETTLE_TOLERANCE of the seed error, far below a tick
                assert live.stop_price == pytest.approx(backtest.stop_price, rel=1e-11)
    signals_seen = int(np.count_nonzero(full.entry[window - 1 :]))
    assert signals_seen > 3, "the series had entries to compare"


def test_timeframe_ms() -> None:
    assert [timeframe_ms(t) for t in ("1m", "15m", "1h", "4h", "1d", "1w")] == [
        60_000,
        900_000,
        HOUR,
        4 * HOUR,
        24 * HOUR,
        168 * HOUR,
    ]
    for bad in ("", "h", "0h", "1x", "1.5h"):
        with pytest.raises(ValueError, match="not a timeframe"):
            timeframe_ms(bad)
