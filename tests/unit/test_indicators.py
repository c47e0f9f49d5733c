"""Indicators against plain-Python reference implementations written from the definitions."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trendbotd.core.strategy import indicators as ind

NAN = float("nan")


# --- reference implementations: one loop each, straight from the textbook definitions ---


def ref_sma(x: list[float], n: int) -> list[float]:
    return [NAN if i < n - 1 else sum(x[i - n + 1 : i + 1]) / n for i in range(len(x))]


def ref_ema(x: list[float], n: int) -> list[float]:
    out = [NAN] * len(x)
    if len(x) < n:
        return out
    value = sum(x[:n]) / n
    out[n - 1] = value
    alpha = 2 / (n + 1)
    for i in range(n, len(x)):
        value = alpha * x[i] + (1 - alpha) * value
        out[i] = value
    return out


def ref_true_range(h: list[float], lo: list[float], c: list[float]) -> list[float]:
    out = [h[0] - lo[0]]
    for i in range(1, len(h)):
        out.append(max(h[i] - lo[i], abs(h[i] - c[i - 1]), abs(lo[i] - c[i - 1])))
    return out


def ref_atr(h: list[float], lo: list[float], c: list[float], n: int) -> list[float]:
    tr = ref_true_range(h, lo, c)
    out = [NAN] * len(tr)
    if len(tr) < n:
        return out
    value = sum(tr[:n]) / n
    out[n - 1] = value
    for i in range(n, len(tr)):
        value = (value * (n - 1) + tr[i]) / n  # Wilder's form
        out[i] = value
    return out


def ref_rolling(x: list[float], n: int, pick: type[max] | type[min]) -> list[float]:
    return [NAN if i < n - 1 else pick(x[i - n + 1 : i + 1]) for i in range(len(x))]


def ref_donchian(x: list[float], n: int, pick: type[max] | type[min]) -> list[float]:
    return [NAN if i < n else pick(x[i - n : i]) for i in range(len(x))]


def ref_efficiency_ratio(x: list[float], n: int) -> list[float]:
    out = []
    for i in range(len(x)):
        if i < n:
            out.append(NAN)
            continue
        path = sum(abs(x[k] - x[k - 1]) for k in range(i - n + 1, i + 1))
        out.append(abs(x[i] - x[i - n]) / path if path else 0.0)
    return out


def assert_close(actual: np.ndarray, expected: list[float], *, rel: float = 1e-9) -> None:
    assert len(actual) == len(expected)
    exp = np.array(expected)
    assert np.array_equal(np.isnan(actual), np.isnan(exp)), "NaN positions differ"
    defined = ~np.isnan(exp)
    np.testing.assert_allclose(actual[defined], exp[defined], rtol=rel, atol=0)


def random_bars(n: int, seed: int = 7) -> tuple[list[float], list[float], list[float]]:
    rng = random.Random(seed)
    price, highs, lows, closes = 100.0, [], [], []
    for _ in range(n):
        o = price
        price *= math.exp(rng.gauss(0, 0.02))
        highs.append(max(o, price) * (1 + rng.random() * 0.01))
        lows.append(min(o, price) * (1 - rng.random() * 0.01))
        closes.append(price)
    return highs, lows, closes


# --- hand-checked values ---


def test_ema_small_example_by_hand() -> None:
    # seed = mean(1, 2, 3) = 2 at index 2; alpha = 0.5: 2 + 0.5*(4-2) = 3; 3 + 0.5*(5-3) = 4
    assert_close(ind.ema([1.0, 2.0, 3.0, 4.0, 5.0], 3), [NAN, NAN, 2.0, 3.0, 4.0])


def test_atr_small_example_by_hand() -> None:
    high = [10.0, 11.0, 12.0, 11.0]
    low = [9.0, 10.0, 10.0, 8.0]
    close = [9.5, 10.5, 11.0, 9.0]
    # TR: 1 (first bar: high-low), 1.5 (11 - prev close 9.5), 2 (12-10), 3 (8 vs prev close 11)
    # ATR(2): seed mean(1, 1.5) = 1.25; (1.25 + 2) / 2 = 1.625; (1.625 + 3) / 2 = 2.3125
    h, lo, c = np.array(high), np.array(low), np.array(close)
    assert_close(ind.true_range(h, lo, c), [1, 1.5, 2, 3])
    assert_close(ind.atr(h, lo, c, 2), [NAN, 1.25, 1.625, 2.3125])


def test_true_range_uses_the_previous_close_on_a_gap() -> None:
    tr = ind.true_range(np.array([10.0, 20.0]), np.array([9.0, 19.0]), np.array([9.5, 19.5]))
    assert tr.tolist() == [1.0, 20.0 - 9.5]


def test_donchian_excludes_the_current_bar() -> None:
    high = [1.0, 5.0, 2.0, 3.0, 9.0]
    assert_close(ind.donchian_high(high, 2), [NAN, NAN, 5.0, 5.0, 3.0])
    assert_close(ind.donchian_low(high, 2), [NAN, NAN, 1.0, 2.0, 2.0])


# --- against the references on a long random series (crosses many filter blocks) ---


@pytest.mark.parametrize("period", [1, 2, 3, 14, 50, 127, 128, 129, 300])
def test_sma_and_ema_match_reference(period: int) -> None:
    _, _, close = random_bars(1000)
    assert_close(ind.sma(close, period), ref_sma(close, period))
    assert_close(ind.ema(close, period), ref_ema(close, period))


@pytest.mark.parametrize("period", [1, 2, 20, 150, 999])
def test_efficiency_ratio_matches_reference(period: int) -> None:
    _, _, close = random_bars(1000, seed=11)
    got = ind.efficiency_ratio(close, period)
    assert_close(got, ref_efficiency_ratio(close, period))
    assert np.all((got[period:] >= 0) & (got[period:] <= 1))


def test_efficiency_ratio_by_hand_and_window_independent() -> None:
    # a straight line is perfectly efficient, a zigzag not at all, flat prices count 0
    assert ind.efficiency_ratio([1.0, 2.0, 3.0, 4.0], 3)[3] == 1.0
    assert ind.efficiency_ratio([1.0, 2.0, 1.0, 2.0, 1.0], 4)[4] == 0.0
    assert ind.efficiency_ratio([5.0] * 4, 2)[3] == 0.0
    # 1 -> 3 -> 2: net 1 over a path of 3
    assert ind.efficiency_ratio([1.0, 3.0, 2.0], 2)[2] == pytest.approx(1 / 3)
    # the live loop's short window gives bit-identical values to the whole series
    _, _, close = random_bars(2000, seed=2)
    full = ind.efficiency_ratio(close, 150)
    tail = ind.efficiency_ratio(close[-400:], 150)
    assert np.array_equal(full[-250:], tail[-250:])


@pytest.mark.parametrize("period", [2, 14, 100, 500])
def test_atr_matches_wilder_reference(period: int) -> None:
    high, low, close = random_bars(1500, seed=3)
    got = ind.atr(np.array(high), np.array(low), np.array(close), period)
    assert_close(got, ref_atr(high, low, close, period))


@pytest.mark.parametrize("window", [1, 2, 20, 55, 999])
def test_rolling_and_donchian_match_reference(window: int) -> None:
    high, low, _ = random_bars(1000, seed=5)
    assert_close(ind.rolling_max(high, window), ref_rolling(high, window, max), rel=0)
    assert_close(ind.rolling_min(low, window), ref_rolling(low, window, min), rel=0)
    assert_close(ind.donchian_high(high, window), ref_donchian(high, window, max), rel=0)
    assert_close(ind.donchian_low(low, window), ref_donchian(low, window, min), rel=0)


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=80),
    window=st.integers(1, 90),
)
def test_rolling_extremes_property(values: list[float], window: int) -> None:
    assert_close(ind.rolling_max(values, window), ref_rolling(values, window, max), rel=0)
    assert_close(ind.rolling_min(values, window), ref_rolling(values, window, min), rel=0)


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(0.01, 1e5, allow_nan=False), min_size=1, max_size=300),
    period=st.integers(1, 40),
)
def test_ema_property(values: list[float], period: int) -> None:
    assert_close(ind.ema(values, period), ref_ema(values, period), rel=1e-9)


# --- edges ---


def test_too_short_input_is_all_nan() -> None:
    assert np.isnan(ind.ema([1.0, 2.0], 3)).all()
    assert np.isnan(ind.sma([1.0, 2.0], 3)).all()
    assert np.isnan(ind.rolling_max([1.0, 2.0], 3)).all()
    one = np.array([1.0])
    assert np.isnan(ind.atr(one, one, one, 2)).all()
    assert len(ind.ema([], 3)) == 0


def test_bad_period_raises() -> None:
    with pytest.raises(ValueError, match="period"):
        ind.ema([1.0, 2.0], 0)
    with pytest.raises(ValueError, match="alpha"):
        ind.smoothed(np.array([1.0, 2.0]), alpha=0.0, start=0, seed=1.0)


def test_causal_a_prefix_gives_the_same_values() -> None:
    high, low, close = random_bars(700, seed=11)
    h, lo, c = np.array(high), np.array(low), np.array(close)
    full_ema, full_atr, full_max = ind.ema(c, 50), ind.atr(h, lo, c, 14), ind.donchian_high(h, 55)
    for k in (60, 128, 129, 333, 700):
        np.testing.assert_allclose(ind.ema(c[:k], 50), full_ema[:k], rtol=1e-12)
        np.testing.assert_allclose(ind.atr(h[:k], lo[:k], c[:k], 14), full_atr[:k], rtol=1e-12)
        np.testing.assert_array_equal(ind.donchian_high(h[:k], 55), full_max[:k])


def test_long_constant_series_does_not_drift() -> None:
    x = np.full(100_000, 123.456)
    assert np.allclose(ind.ema(x, 50)[49:], 123.456, rtol=1e-12, atol=0)
    assert np.allclose(ind.atr(x, x, x, 14)[13:], 0.0, atol=1e-12)


def test_settle_bars_bounds_the_seed_weight() -> None:
    alpha = 2 / 51
    k = ind.settle_bars(alpha, tolerance=1e-4)
    assert (1 - alpha) ** k <= 1e-4 < (1 - alpha) ** (k - 1)
    assert ind.settle_bars(1.0) == 0


# --- bit-identical whatever the array's length or alignment (backtest == live) ---


def test_window_sums_add_each_window_in_order() -> None:
    rng = random.Random(4)
    x = [rng.uniform(-1e3, 1e3) * 10 ** rng.randint(-6, 6) for _ in range(500)]
    for period in (1, 2, 7, 64, 500):
        expected = []
        for j in range(len(x) - period + 1):
            total = x[j]
            for value in x[j + 1 : j + period]:
                total += value
            expected.append(total)
        assert ind.window_sums(x, period).tolist() == expected
    assert len(ind.window_sums(x[:3], 4)) == 0


def test_every_indicator_is_bit_identical_on_any_prefix_and_offset() -> None:
    # The backtest computes over the whole history, the live loop over the candles it has:
    # the same bars must give the same floats, whatever the slice's length and start
    # address (block products and pairwise sums round by both).
    rng = random.Random(12)
    high, low, close = random_bars(1500, seed=13)
    h, lo, c = np.array(high), np.array(low), np.array(close)
    for period in (1, 3, 5, 14, 50):
        full = {
            "ema": ind.ema(c, period),
            "sma": ind.sma(c, period),
            "atr": ind.atr(h, lo, c, period),
            "er": ind.efficiency_ratio(c, period),
        }
        for _ in range(40):
            k = rng.randint(period, len(c))
            # a copy at another offset in memory, as a window fetched live would be
            pad = rng.randint(0, 7)
            hk, lk, ck = (np.concatenate([np.zeros(pad), a[:k]])[pad:] for a in (h, lo, c))
            got = {
                "ema": ind.ema(ck, period),
                "sma": ind.sma(ck, period),
                "atr": ind.atr(hk, lk, ck, period),
                "er": ind.efficiency_ratio(ck, period),
            }
            for name, values in got.items():
                assert np.array_equal(values, full[name][:k], equal_nan=True), (name, period, k)


def test_sums_of_a_sliding_window_equal_those_of_the_whole_series() -> None:
    # SMA and efficiency ratio have no seed: a live tail gives exactly the backtest's values
    _, _, close = random_bars(3000, seed=21)
    c = np.array(close)
    rng = random.Random(5)
    for _ in range(30):
        start, period = rng.randint(0, 2500), rng.choice([2, 10, 20, 55])
        tail = c[start:].copy()
        assert np.array_equal(ind.sma(tail, period)[period:], ind.sma(c, period)[start + period :])
        er_tail = ind.efficiency_ratio(tail, period)[period:]
        assert np.array_equal(er_tail, ind.efficiency_ratio(c, period)[start + period :])
