"""Performance figures of an equity curve and a list of trade results."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from numpy.typing import NDArray

YEAR_MS = 365 * 86_400_000  # crypto trades every day of the year


@dataclass(frozen=True, slots=True)
class Metrics:
    start_equity: float
    final_equity: float
    net_return: float  # final / start - 1
    max_drawdown: float  # largest fall from a running peak, as a fraction of that peak
    sharpe: float  # mean / stdev of per-bar returns, annualised; 0 when undefined
    win_rate: float | None  # share of trades with a positive net result; None without trades
    exposure: float  # share of bars that closed with a position open
    trades: int
    wins: int
    fees: float
    bars: int


def max_drawdown(equity: NDArray[np.float64], *, start_equity: float) -> float:
    """Largest peak-to-trough fall, the start counting as the first peak."""
    curve = np.concatenate(([start_equity], np.asarray(equity, dtype=np.float64)))
    peaks = np.maximum.accumulate(curve)
    with np.errstate(divide="ignore", invalid="ignore"):
        falls = np.where(peaks > 0, 1.0 - curve / peaks, 0.0)
    return float(max(falls.max(), 0.0))


def bar_returns(equity: NDArray[np.float64], *, start_equity: float) -> NDArray[np.float64]:
    curve = np.concatenate(([start_equity], np.asarray(equity, dtype=np.float64)))
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = np.diff(curve) / curve[:-1]
    return np.where(np.isfinite(returns), returns, 0.0)


def sharpe_ratio(equity: NDArray[np.float64], *, start_equity: float, timeframe_ms: int) -> float:
    """Annualised Sharpe ratio of per-bar returns (risk-free rate 0, sample stdev)."""
    if timeframe_ms <= 0:
        raise ValueError(f"timeframe_ms must be positive, not {timeframe_ms}")
    returns = bar_returns(equity, start_equity=start_equity)
    if len(returns) < 2:
        return 0.0
    stdev = float(returns.std(ddof=1))
    if not stdev > 0.0:
        return 0.0
    return float(returns.mean()) / stdev * math.sqrt(YEAR_MS / timeframe_ms)


def compute_metrics(
    *,
    equity: NDArray[np.float64],
    start_equity: Decimal | float,
    in_position: NDArray[np.bool_],
    trade_pnls: Sequence[Decimal | float],
    fees: Decimal | float,
    timeframe_ms: int,
) -> Metrics:
    start = float(start_equity)
    final = float(equity[-1]) if len(equity) else start
    wins = sum(1 for p in trade_pnls if p > 0)
    return Metrics(
        start_equity=start,
        final_equity=final,
        net_return=final / start - 1.0 if start > 0 else 0.0,
        max_drawdown=max_drawdown(equity, start_equity=start),
        sharpe=sharpe_ratio(equity, start_equity=start, timeframe_ms=timeframe_ms),
        win_rate=wins / len(trade_pnls) if trade_pnls else None,
        exposure=float(np.mean(in_position)) if len(in_position) else 0.0,
        trades=len(trade_pnls),
        wins=wins,
        fees=float(fees),
        bars=len(equity),
    )
