"""Optional chart of a backtest (price with trades, equity). Needs matplotlib (extra "plot")."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np

from trendbotd.backtest.engine import BacktestResult
from trendbotd.core.strategy.candles import CandleArrays
from trendbotd.core.strategy.signals import Direction


def plotting_available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def _pyplot() -> ModuleType:
    # Imported here, not at module level: matplotlib is optional and slow to import.
    matplotlib = importlib.import_module("matplotlib")
    matplotlib.use("Agg")  # files only, never a window
    return importlib.import_module("matplotlib.pyplot")


def save_plot(result: BacktestResult, candles: CandleArrays, path: Path, *, title: str) -> None:
    plt = _pyplot()
    times = candles.open_time_ms.astype("datetime64[ms]")
    fig, (price_ax, equity_ax) = plt.subplots(
        2, 1, sharex=True, figsize=(12, 7), gridspec_kw={"height_ratios": [3, 1]}
    )
    price_ax.plot(times, candles.close, linewidth=0.8, color="0.3", label="close")
    for direction, marker, color in ((Direction.LONG, "^", "green"), (Direction.SHORT, "v", "red")):
        trades = [t for t in result.trades if t.direction is direction]
        if trades:
            price_ax.scatter(
                np.array([t.entry_ms for t in trades], dtype="datetime64[ms]"),
                [float(t.entry_price) for t in trades],
                marker=marker,
                color=color,
                s=30,
                label=f"{direction.name.lower()} entry",
            )
    if result.trades:
        price_ax.scatter(
            np.array([t.exit_ms for t in result.trades], dtype="datetime64[ms]"),
            [float(t.exit_price) for t in result.trades],
            marker="x",
            color="black",
            s=20,
            label="exit",
        )
    price_ax.set_title(title)
    price_ax.legend(loc="upper left")
    equity_ax.plot(times, result.equity, linewidth=0.8, color="tab:blue")
    equity_ax.set_ylabel("equity")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
