"""Request parameter parsing with Binance's error codes for missing or malformed values."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from trendbotd.sim import errors
from trendbotd.sim.desk import OrderDesk
from trendbotd.sim.specs import SymbolSpec
from trendbotd.sim.state import SimState

_DECIMAL = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")


@dataclass(slots=True)
class Call:
    """One request as a route handler sees it."""

    method: str
    path: str
    params: Mapping[str, str]
    state: SimState
    desk: OrderDesk  # places, finds and cancels orders; ``synced()`` for a current look
    now: int  # the server's time (the sim clock plus any skew)
    fill_cap: Decimal | None = None  # a partial_fill fault: a market order fills this much

    def text(self, name: str, default: str | None = None) -> str:
        value = self.params.get(name)
        if value in (None, ""):
            if default is None:
                raise errors.mandatory(name)
            return default
        return str(value)

    def optional(self, name: str) -> str | None:
        value = self.params.get(name)
        return None if value in (None, "") else str(value)

    def decimal(self, name: str, *, required: bool = True) -> Decimal | None:
        value = self.params.get(name)
        if value in (None, ""):
            if required:
                raise errors.mandatory(name)
            return None
        if not _DECIMAL.match(str(value)):
            raise errors.illegal(name)
        return Decimal(str(value))

    def integer(self, name: str, default: int | None = None) -> int | None:
        value = self.params.get(name)
        if value in (None, ""):
            return default
        try:
            return int(str(value))
        except ValueError:
            raise errors.illegal(name) from None

    def flag(self, name: str) -> bool:
        value = (self.params.get(name) or "false").lower()
        if value not in ("true", "false"):
            raise errors.SimError(-1100, f"Illegal characters found in parameter '{name}'.")
        return value == "true"

    def spec(self, *, required: bool = True) -> SymbolSpec | None:
        symbol = self.params.get("symbol")
        if not symbol:
            if required:
                raise errors.mandatory("symbol")
            return None
        found = self.state.specs.get(str(symbol).upper())
        if found is None:
            raise errors.invalid_symbol()
        return found

    def symbol(self) -> SymbolSpec:
        found = self.spec(required=True)
        assert found is not None  # spec(required=True) raises instead
        return found


Handler = Callable[[Call], Any]


def check_qty(spec: SymbolSpec, qty: Decimal, *, market: bool) -> None:
    if qty <= 0:
        raise errors.SimError(-4003, "Quantity less than or equal to zero.")
    if -qty.normalize().as_tuple().exponent > spec.qty_precision:  # type: ignore[operator]
        raise errors.SimError(-1111, "Precision is over the maximum defined for this asset.")
    if qty % spec.step != 0:
        raise errors.SimError(-4023, "Qty not increased by step size.")
    if qty < spec.min_qty:
        raise errors.SimError(-4004, "Quantity less than min quantity.")
    if qty > (spec.market_max_qty if market else spec.max_qty):
        raise errors.SimError(-4005, "Quantity greater than max quantity.")


def check_price(spec: SymbolSpec, price: Decimal, name: str = "price") -> None:
    if price <= 0:
        raise errors.SimError(-4001, "Price less than 0.")
    if -price.normalize().as_tuple().exponent > spec.price_precision:  # type: ignore[operator]
        raise errors.SimError(-1111, "Precision is over the maximum defined for this asset.")
    if price % spec.tick != 0:
        raise errors.SimError(-4014, f"Price not increased by tick size. ({name})")
