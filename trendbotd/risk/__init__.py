"""Risk arithmetic: position sizing (pure, Decimal)."""

from trendbotd.risk.sizing import (
    SizingResult,
    round_stop,
    round_to_step,
    size_position,
    to_decimal,
)

__all__ = ["SizingResult", "round_stop", "round_to_step", "size_position", "to_decimal"]
