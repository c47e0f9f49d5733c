"""The STATUS line of a tick: the mode and equity, then each symbol's position and stop."""

from __future__ import annotations

from decimal import Decimal

from trendbotd.core.domain import Balance, Position
from trendbotd.core.records import ModeState, TradingMode
from trendbotd.journal.store import Journal
from trendbotd.trading.sync_mode import shown_reason


def describe(position: Position | None, stop: Decimal | None) -> str:
    if position is None or position.is_flat:
        return "flat"
    side = "long" if position.amount > 0 else "short"
    text = f"{side} {abs(position.amount)}"
    if position.entry_price:
        text += f" @{position.entry_price}"
    return text + (f" stop {stop}" if stop is not None else " NO STOP")


def head(
    journal: Journal, mode: ModeState, balance: Balance | None, *, config_reduce_only: bool
) -> str:
    equity = f"equity {balance.total}" if balance else "balance unknown"
    text = f"{mode.mode.value} | {equity}"
    if mode.mode is not TradingMode.NORMAL:
        text += f" ({shown_reason(journal, mode)})"
    elif config_reduce_only:
        text = f"{TradingMode.REDUCE_ONLY.value} | {equity} (risk.reduce_only in the config)"
    return text
