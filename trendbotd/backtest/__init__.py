"""Backtest: the live decision and sizing code run over historical candles."""

from trendbotd.backtest.engine import (
    BacktestResult,
    BacktestSettings,
    Trade,
    run_backtest,
    synthetic_market,
)
from trendbotd.backtest.metrics import Metrics, compute_metrics

__all__ = [
    "BacktestResult",
    "BacktestSettings",
    "Metrics",
    "Trade",
    "compute_metrics",
    "run_backtest",
    "synthetic_market",
]
