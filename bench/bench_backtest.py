"""Backtest throughput on 100,000 generated candles, beside a plain numpy loop over them.

    .venv/bin/python bench/bench_backtest.py [--candles N] [--runs R] [--profile]

Prints candles per second (median of R runs) of the whole backtest -- vectorised
indicator pass plus the per-candle loop that calls the live ``decide_bar`` -- for both
strategy kinds, the same for a baseline Python loop that only reads each candle's OHLC
from the numpy arrays, and the ratio. Target: >= 100,000 candles/s.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time
from collections.abc import Callable
from decimal import Decimal

import numpy as np

from trendbotd.backtest.engine import BacktestSettings, run_backtest, synthetic_market
from trendbotd.config import StrategyParams
from trendbotd.core.strategy.candles import CandleArrays
from trendbotd.core.strategy.signals import compute_signals
from trendbotd.sim.market import ANCHOR_MS, GeneratedCandles

HOUR = 3_600_000
TARGET = 100_000


def generate(n: int, *, seed: int = 1) -> CandleArrays:
    """Deterministic 1h candles from the simulated exchange's generator (mixed regimes)."""
    gen = GeneratedCandles(
        seed=seed, symbol="BTC/USDT:USDT", regime="mixed", timeframe_ms=HOUR, base_price=30000.0
    )
    first = ANCHOR_MS // HOUR
    bars = [gen.bar(first + i) for i in range(n)]
    return CandleArrays(
        open_time_ms=(first + np.arange(n, dtype=np.int64)) * HOUR,
        open=np.array([b.open for b in bars]),
        high=np.array([b.high for b in bars]),
        low=np.array([b.low for b in bars]),
        close=np.array([b.close for b in bars]),
        volume=np.array([b.volume for b in bars]),
    )


def baseline(candles: CandleArrays) -> float:
    """The floor: a Python loop that touches each candle's OHLC in the numpy arrays."""
    o, h, lo, c = candles.open, candles.high, candles.low, candles.close
    acc = 0.0
    for i in range(len(c)):
        acc += (h[i] - lo[i]) + (c[i] - o[i])
    return acc


def median_seconds(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candles", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="cProfile one ema_cross run")
    args = parser.parse_args()
    runs = max(5, args.runs)

    candles = generate(args.candles)
    n = len(candles)
    settings = BacktestSettings(
        market=synthetic_market("BTC/USDT:USDT", float(np.median(candles.close))),
        start_equity=Decimal(10000),
        slippage_bps=Decimal(2),
    )
    base_s = median_seconds(lambda: baseline(candles), runs)
    print(f"candles: {n} (1h, generated, mixed regimes); median of {runs} runs each")
    print(f"{'baseline numpy loop':<28}{n / base_s:>14,.0f} candles/s  ({base_s * 1000:.1f} ms)")
    for kind in ("ema_cross", "donchian"):
        params = StrategyParams(kind=kind)  # type: ignore[arg-type]
        signals_s = median_seconds(lambda p=params: compute_signals(candles, p), runs)
        total_s = median_seconds(lambda p=params: run_backtest(candles, p, settings), runs)
        trades = len(run_backtest(candles, params, settings).trades)
        verdict = "ok" if n / total_s >= TARGET else "BELOW TARGET"
        print(
            f"{'backtest ' + kind:<28}{n / total_s:>14,.0f} candles/s  ({total_s * 1000:.1f} ms, "
            f"indicators {signals_s * 1000:.1f} ms, {trades} trades)  "
            f"ratio to baseline {base_s / total_s:.2f}  target {TARGET:,}: {verdict}"
        )
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(run_backtest, candles, StrategyParams(), settings)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
