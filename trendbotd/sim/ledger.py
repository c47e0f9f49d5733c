"""Pure one-way-mode position arithmetic in Decimal: entry price, realised PnL, fees."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

ZERO = Decimal(0)
TAKER_FEE = Decimal("0.0005")
MAKER_FEE = Decimal("0.0002")


@dataclass(frozen=True, slots=True)
class FillEffect:
    amount: Decimal  # signed position after the fill
    entry_price: Decimal  # 0 when flat
    realized_pnl: Decimal  # profit of the part that closed (before fees)
    fee: Decimal  # always >= 0, paid in the quote asset


def sign(side: str) -> int:
    return 1 if side == "BUY" else -1


def apply_fill(
    *,
    amount: Decimal,
    entry_price: Decimal,
    side: str,
    qty: Decimal,
    price: Decimal,
    fee_rate: Decimal,
) -> FillEffect:
    """The position after filling ``qty`` at ``price``.

    Adding to a position averages the entry price; reducing realises
    ``(price - entry) * closed`` for a long (the opposite for a short); crossing through
    zero closes the old side and opens the rest at ``price``.
    """
    delta = qty * sign(side)
    fee = qty * price * fee_rate
    if amount == 0 or (amount > 0) == (delta > 0):
        new_amount = amount + delta
        entry = (abs(amount) * entry_price + qty * price) / abs(new_amount)
        return FillEffect(new_amount, entry, ZERO, fee)
    closed = min(qty, abs(amount))
    direction = 1 if amount > 0 else -1
    realized = (price - entry_price) * closed * direction
    new_amount = amount + delta
    if new_amount == 0:
        return FillEffect(ZERO, ZERO, realized, fee)
    if (new_amount > 0) == (amount > 0):
        return FillEffect(new_amount, entry_price, realized, fee)
    return FillEffect(new_amount, price, realized, fee)


def unrealized(amount: Decimal, entry_price: Decimal, mark: Decimal) -> Decimal:
    return (mark - entry_price) * amount


def reduces(amount: Decimal, side: str) -> bool:
    """Whether an order on ``side`` would reduce a position of signed ``amount``."""
    return (amount > 0 and side == "SELL") or (amount < 0 and side == "BUY")


def increase_qty(amount: Decimal, side: str, qty: Decimal) -> Decimal:
    """The part of an order that opens or adds to exposure (needs initial margin)."""
    if reduces(amount, side):
        return max(ZERO, qty - abs(amount))
    return qty
