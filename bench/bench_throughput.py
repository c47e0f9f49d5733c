"""Backtest throughput rows for the table, from bench_backtest's own pieces.

The same 100,000 generated 1h candles go through the real backtest (vectorised
indicators + the per-candle loop calling the live decision code) and through the
baseline, a plain Python loop that reads each candle's OHLC from the numpy arrays.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from bench.bench_backtest import TARGET, baseline, generate, median_seconds
from bench.common import Row, Target, log
from trendbotd.backtest.engine import BacktestSettings, run_backtest, synthetic_market
from trendbotd.config import StrategyKind, StrategyParams


def backtest_rows(runs: int, *, candles: int = 100_000) -> list[Row]:
    log(f"backtest: generating {candles:,} candles")
    data = generate(candles)
    n = len(data)
    settings = BacktestSettings(
        market=synthetic_market("BTC/USDT:USDT", float(np.median(data.close))),
        start_equity=Decimal(10000),
        slippage_bps=Decimal(2),
    )
    baseline(data)  # warm-up
    base = n / median_seconds(lambda: baseline(data), runs)
    rows: list[Row] = []
    kinds: tuple[StrategyKind, ...] = ("ema_cross", "donchian")
    for kind in kinds:
        params = StrategyParams(kind=kind)

        def one_backtest(params: StrategyParams = params) -> None:
            run_backtest(data, params, settings)

        log(f"backtest: {kind} x {runs}")
        one_backtest()  # warm-up: indicator weight caches
        seconds = median_seconds(one_backtest, runs)
        rows.append(
            Row(
                f"backtest throughput, {kind} ({n:,} 1h candles)",
                n / seconds,
                "candles/s",
                baseline_name="plain numpy loop",
                baseline=base,
                target=Target("min", TARGET, f">= {TARGET:,} candles/s"),
                runs=runs,
            )
        )
    return rows
