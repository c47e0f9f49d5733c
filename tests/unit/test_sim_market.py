"""The candle generator, the CSV loader and the intra-bar price path."""

from __future__ import annotations

import itertools
import math
import statistics
from pathlib import Path

import pytest

from trendbotd.sim.market import (
    ANCHOR_MS,
    SEGMENT_BARS,
    TIMEFRAMES_MS,
    CsvCandles,
    GeneratedCandles,
    Tape,
    align,
)

H = TIMEFRAMES_MS["1h"]
START = ANCHOR_MS // H + 1000


def gen(seed: int = 1, regime: str = "mixed", symbol: str = "BTC") -> GeneratedCandles:
    return GeneratedCandles(
        seed=seed, symbol=symbol, regime=regime, timeframe_ms=H, base_price=30000.0
    )


def test_same_seed_same_candles_in_any_order() -> None:
    a, b = gen(seed=4), gen(seed=4)
    forward = [a.bar(START + i) for i in range(600)]
    backward = [b.bar(START + i) for i in reversed(range(600))][::-1]
    assert forward == backward
    assert gen(seed=4).bar(START + 5000) == a.bar(START + 5000)


def test_different_seed_or_symbol_differs() -> None:
    base = [gen(seed=1).bar(START + i).close for i in range(50)]
    assert base != [gen(seed=2).bar(START + i).close for i in range(50)]
    assert base != [gen(seed=1, symbol="ETH").bar(START + i).close for i in range(50)]


def test_bars_are_continuous_and_consistent() -> None:
    g = gen()
    bars = [g.bar(START + i) for i in range(3 * SEGMENT_BARS)]
    for prev, nxt in itertools.pairwise(bars):
        assert nxt.open == pytest.approx(prev.close, rel=1e-12)
    for bar in bars:
        assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
        assert bar.volume > 0


def test_time_before_the_anchor_works() -> None:
    g = gen()
    bars = [g.bar(ANCHOR_MS // H - 2 * SEGMENT_BARS + i) for i in range(4 * SEGMENT_BARS)]
    for prev, nxt in itertools.pairwise(bars):
        assert nxt.open == pytest.approx(prev.close, rel=1e-12)
    assert 30000 / 20 < bars[0].close < 30000 * 20


def _efficiency(closes: list[float]) -> float:
    """|net log move| / total log path: near 1 for a steady trend, near 0 for a range."""
    net = abs(math.log(closes[-1] / closes[0]))
    path = sum(abs(math.log(b / a)) for a, b in itertools.pairwise(closes))
    return net / path


def _mean_efficiency(regime: str) -> float:
    values = []
    for seed in range(1, 6):
        g = gen(seed=seed, regime=regime)
        closes = [g.bar(START + i).close for i in range(4 * SEGMENT_BARS)]
        for w in range(0, len(closes), SEGMENT_BARS):
            values.append(_efficiency(closes[w : w + SEGMENT_BARS]))
    return statistics.mean(values)


def test_trend_regime_drifts_and_range_regime_does_not() -> None:
    trend, ranging = _mean_efficiency("trend"), _mean_efficiency("range")
    assert trend > 0.1
    assert ranging < 0.07
    assert trend > 3 * ranging


def test_range_regime_stays_near_its_level() -> None:
    g = gen(regime="range")
    closes = [g.bar(START + i).close for i in range(10 * SEGMENT_BARS)]
    assert max(closes) / min(closes) < 1.6


def test_unknown_regime_is_refused() -> None:
    with pytest.raises(ValueError, match="regime"):
        gen(regime="moon")


def test_path_holds_the_open_then_visits_extremes_then_close() -> None:
    tape = Tape(gen())
    index = START + 7
    bar = tape.source.bar(index)
    t = index * H
    assert tape.price_at(t) == bar.open
    assert tape.price_at(t + H // 4 - 1) == bar.open
    first, second = (bar.low, bar.high) if bar.close >= bar.open else (bar.high, bar.low)
    assert tape.price_at(t + H // 2) == pytest.approx(first)
    assert tape.price_at(t + 3 * H // 4) == pytest.approx(second)
    assert tape.price_at(t + H) == pytest.approx(bar.close)
    pieces = list(tape.pieces(t, t + H))
    assert min(min(p.p0, p.p1) for p in pieces) == pytest.approx(bar.low)
    assert max(max(p.p0, p.p1) for p in pieces) == pytest.approx(bar.high)


def test_window_aggregates_and_forms() -> None:
    tape = Tape(gen())
    t = START * H - START * H % (4 * H)
    four = tape.window(t, t + 4 * H, t + 10 * H)
    hours = [tape.source.bar(t // H + i) for i in range(4)]
    assert four.open == hours[0].open
    assert four.close == hours[-1].close
    assert four.high == max(b.high for b in hours)
    assert four.volume == pytest.approx(sum(b.volume for b in hours))
    # still forming at a quarter of the first hour: only the open so far
    forming = tape.window(t, t + 4 * H, t + H // 8)
    assert forming.open == forming.close == forming.high == forming.low == hours[0].open


def test_week_bars_open_on_monday() -> None:
    week = TIMEFRAMES_MS["1w"]
    monday = 1_704_067_200_000  # 2024-01-01T00:00Z, a Monday
    assert align(monday + 3 * 86_400_000, week) == monday


def _write_csv(path: Path, rows: int, *, header: bool = True, seconds: bool = False) -> None:
    lines = ["Date,Open,High,Low,Close,Volume"] if header else []
    t0 = 1_500_000_000_000 - 1_500_000_000_000 % H
    for i in range(rows):
        ts = (t0 + i * H) // 1000 if seconds else t0 + i * H
        price = 100 + i
        lines.append(f"{ts},{price},{price + 2},{price - 1},{price + 1},{10 + i}")
    path.write_text("\n".join(lines) + "\n")


def test_csv_loads_with_or_without_header(tmp_path: Path) -> None:
    for header, seconds in ((True, False), (False, True)):
        path = tmp_path / f"c{header}{seconds}.csv"
        _write_csv(path, 20, header=header, seconds=seconds)
        src = CsvCandles(path)
        assert src.timeframe_ms == H
        bar = src.bar(src.first_index + 3)
        assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (103, 105, 102, 104, 13)


def test_csv_iso_dates_and_flat_outside(tmp_path: Path) -> None:
    path = tmp_path / "iso.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2020-01-01 00:00:00,1,2,0.5,1.5,3\n"
        "2020-01-01 01:00:00,1.5,2,1,1.8,4\n"
    )
    src = CsvCandles(path)
    assert src.first_open_ms == 1_577_836_800_000
    after = src.bar(src.last_index + 5)
    assert (after.open, after.close, after.volume) == (1.8, 1.8, 0.0)
    before = src.bar(src.first_index - 1)
    assert before.close == 1


def test_csv_replay_shifts_series_to_the_start(tmp_path: Path) -> None:
    path = tmp_path / "replay.csv"
    _write_csv(path, 100)
    src = CsvCandles(path)
    first = src.bar(src.first_index)
    start = 1_800_000_000_000
    src.replay_from(start, warmup_bars=30)
    index = align(start, H) // H
    assert src.bar(index) == CsvCandles(path).bar(CsvCandles(path).first_index + 30)
    assert src.bar(index - 30) == first
