"""Candle close to order request sent (placeholder until the trading runner lands)."""

from __future__ import annotations

from bench.common import Row


def latency_rows(runs: int, *, closes: int) -> tuple[list[Row], list[str]]:
    del runs, closes
    return [], ["latency: not measured yet"]
