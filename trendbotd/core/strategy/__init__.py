"""Trading decisions as pure functions of closed candles and the current position."""

from trendbotd.core.strategy.candles import CandleArrays, closed_candles, timeframe_ms
from trendbotd.core.strategy.signals import (
    FLAT,
    HOLD,
    Action,
    BarSignal,
    Decision,
    Direction,
    PositionView,
    SignalArrays,
    compute_signals,
    decide,
    decide_bar,
    min_history,
    required_history,
)

__all__ = [
    "FLAT",
    "HOLD",
    "Action",
    "BarSignal",
    "CandleArrays",
    "Decision",
    "Direction",
    "PositionView",
    "SignalArrays",
    "closed_candles",
    "compute_signals",
    "decide",
    "decide_bar",
    "min_history",
    "required_history",
    "timeframe_ms",
]
