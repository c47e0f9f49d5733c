"""Position size from the risk budget: how much to buy so that the stop costs a fixed share.

``amount = equity * risk_per_trade / |entry - stop|``, then capped by leverage
(``equity * MARGIN_USE * max_leverage / entry``) and by ``max_notional / entry``, and
rounded DOWN to the market's amount step so no cap or budget is ever exceeded. Prices are rounded to
the price step: the entry to the nearest step, the stop AWAY from the entry (a long's
stop down, a short's up), so the distance the size is computed from is never smaller
than the distance the exchange will use. Decimal throughout; floats only at the edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

from trendbotd.core.domain import ZERO, Market

CAP_LEVERAGE = "leverage"
# At most this share of equity goes into initial margin: the exchange also wants the
# entry's fee and any slippage between the reference price and the fill covered, and a
# position sized to 100% of margin is refused (Binance -2019) exactly when it matters.
MARGIN_USE = Decimal("0.95")
CAP_MAX_NOTIONAL = "max_notional"


@dataclass(frozen=True, slots=True)
class SizingResult:
    """``amount`` > 0 when the trade may go ahead; else ``skip_reason`` says why not."""

    amount: Decimal
    entry_price: Decimal  # rounded to the price step
    stop_price: Decimal  # rounded to the price step, away from the entry
    notional: Decimal  # amount * entry_price
    risk: Decimal  # amount * |entry_price - stop_price|: lost if the stop fills exactly
    capped_by: str | None = None  # CAP_LEVERAGE / CAP_MAX_NOTIONAL when a cap bound the size
    skip_reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.skip_reason is None and self.amount > 0


def to_decimal(value: Decimal | float | int) -> Decimal:
    """A float as the short decimal it prints as: 0.1 -> Decimal("0.1")."""
    if isinstance(value, Decimal):
        return value
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def round_to_step(value: Decimal, step: Decimal, *, rounding: str) -> Decimal:
    """``value`` as a whole number of ``step`` (ROUND_FLOOR, ROUND_CEILING, ROUND_HALF_EVEN...)."""
    if step <= 0:
        raise ValueError(f"step must be positive, not {step}")
    # quantize: the result carries the step's decimal places, as the exchange prints them
    return ((value / step).to_integral_value(rounding=rounding) * step).quantize(step)


def round_stop(stop_price: Decimal | float, *, long: bool, market: Market) -> Decimal:
    """A stop price on the price grid, moved away from the position's side of the market.

    A long's stop is rounded down and a short's up: never tighter than decided, so the
    risk taken is at most the risk sized for. Use it for trailing moves too.
    """
    rounding = ROUND_FLOOR if long else ROUND_CEILING
    return round_to_step(to_decimal(stop_price), market.price_step, rounding=rounding)


def _skip(reason: str, *, entry: Decimal, stop: Decimal) -> SizingResult:
    return SizingResult(
        amount=ZERO,
        entry_price=entry,
        stop_price=stop,
        notional=ZERO,
        risk=ZERO,
        skip_reason=reason,
    )


def _grid_prices(
    entry_price: Decimal, stop_price: Decimal, market: Market
) -> tuple[Decimal, Decimal, str | None]:
    """(entry, stop, problem) on the price grid; problem is None when the stop is usable."""
    if stop_price == entry_price:
        return entry_price, stop_price, "stop price equals entry price"
    long = stop_price < entry_price
    entry = round_to_step(entry_price, market.price_step, rounding=ROUND_HALF_EVEN)
    stop = round_stop(stop_price, long=long, market=market)
    if entry <= 0:
        return entry, stop, f"entry {entry_price} rounds to zero"
    if stop <= 0 or (stop >= entry if long else stop <= entry):
        return entry, stop, f"stop {stop} not on the {'low' if long else 'high'} side of {entry}"
    return entry, stop, None


def _check_inputs(
    *,
    equity: Decimal,
    entry_price: Decimal,
    stop_price: Decimal,
    risk_per_trade: float,
    max_leverage: int,
    max_notional: Decimal,
    market: Market,
) -> str | None:
    checks = (
        (equity.is_finite() and equity > 0, f"equity {equity} is not positive"),
        (entry_price.is_finite() and entry_price > 0, f"entry price {entry_price} not positive"),
        (stop_price.is_finite() and stop_price > 0, f"stop price {stop_price} is not positive"),
        (0 < risk_per_trade <= 1, f"risk_per_trade {risk_per_trade} not in (0, 1]"),
        (max_leverage >= 1, f"max_leverage {max_leverage} is below 1"),
        (max_notional > 0, f"max_notional {max_notional} is not positive"),
        (market.amount_step > 0 and market.price_step > 0, f"{market.symbol}: bad step sizes"),
    )
    return next((reason for ok, reason in checks if not ok), None)


def size_position(
    *,
    equity: Decimal,
    entry_price: Decimal,
    stop_price: Decimal,
    risk_per_trade: float,
    max_leverage: int,
    max_notional: Decimal,
    market: Market,
) -> SizingResult:
    """How much to trade. The side follows from the stop: below the entry = long.

    ``entry_price`` is the price the order is expected to fill at (the current price for
    a market order right after a close), ``equity`` the account equity in the quote
    currency, ``max_leverage`` the leverage the position will have on the exchange.
    Never raises for bad numbers: returns a skip with the reason.
    """
    problem = _check_inputs(
        equity=equity,
        entry_price=entry_price,
        stop_price=stop_price,
        risk_per_trade=risk_per_trade,
        max_leverage=max_leverage,
        max_notional=max_notional,
        market=market,
    )
    if problem is not None:
        return _skip(problem, entry=entry_price, stop=stop_price)
    entry, stop, problem = _grid_prices(entry_price, stop_price, market)
    if problem is not None:
        return _skip(problem, entry=entry, stop=stop)
    distance = abs(entry - stop)

    amount = equity * to_decimal(risk_per_trade) / distance
    capped_by = None
    by_leverage = equity * MARGIN_USE * max_leverage / entry
    if by_leverage < amount:
        amount, capped_by = by_leverage, CAP_LEVERAGE
    by_notional = max_notional / entry
    if by_notional < amount:
        amount, capped_by = by_notional, CAP_MAX_NOTIONAL
    amount = round_to_step(amount, market.amount_step, rounding=ROUND_FLOOR)
    notional = amount * entry

    reason = None
    if amount <= 0 or amount < market.min_amount:
        reason = f"amount {amount} below the minimum {market.min_amount} of {market.symbol}"
    elif notional < market.min_notional:
        reason = f"notional {notional} below the minimum {market.min_notional} of {market.symbol}"
    if reason is not None:
        return _skip(reason, entry=entry, stop=stop)
    return SizingResult(
        amount=amount,
        entry_price=entry,
        stop_price=stop,
        notional=notional,
        risk=amount * distance,
        capped_by=capped_by,
    )
