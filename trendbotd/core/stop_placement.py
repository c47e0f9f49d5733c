"""Where protective stops go and what a refused one means. Pure.

A stop is a reduce-only STOP_MARKET for an amount, never ``closePosition=true``: Binance
allows one closePosition stop per direction (-4130) and it cannot cover a part. Binance
accepts a reduce-only stop while no position exists; it only ever reduces one when it
triggers (with nothing to reduce it expires), so it can be placed before the entry.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from trendbotd.core.domain import Market, Position
from trendbotd.core.sizing import round_to_step


def mark_price(position: Position) -> Decimal:
    """The mark price a position's unrealized PnL was computed at (Binance: upnl =
    amount * (mark - entry)), or its entry price when that says nothing."""
    if position.amount == 0 or position.unrealized_pnl == 0:
        return position.entry_price
    return position.entry_price + position.unrealized_pnl / position.amount


def emergency_stop_price(
    position: Position, *, distance: Decimal, market: Market | None
) -> Decimal:
    """A stop ``distance`` (a fraction) from the mark on the losing side, on the price
    grid and rounded away from the market, for a position found without a stop."""
    mark = mark_price(position)
    long = position.amount > 0
    raw = mark * (1 - distance) if long else mark * (1 + distance)
    if market is None:
        return raw
    return round_to_step(raw, market.price_step, rounding=ROUND_FLOOR if long else ROUND_CEILING)
