"""Trading rules of each simulated symbol and their exchangeInfo entry in Binance's shape."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

ORDER_TYPES = [
    "LIMIT",
    "MARKET",
    "STOP",
    "STOP_MARKET",
    "TAKE_PROFIT",
    "TAKE_PROFIT_MARKET",
    "TRAILING_STOP_MARKET",
]


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    unified: str  # "BTC/USDT:USDT"
    id: str  # "BTCUSDT"
    base: str
    quote: str
    tick: Decimal
    step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    market_max_qty: Decimal
    min_notional: Decimal
    max_leverage: int = 125

    @property
    def price_precision(self) -> int:
        return max(0, -self.tick.normalize().as_tuple().exponent)  # type: ignore[operator]

    @property
    def qty_precision(self) -> int:
        return max(0, -self.step.normalize().as_tuple().exponent)  # type: ignore[operator]

    def round_price(self, price: float | Decimal) -> Decimal:
        units = (Decimal(str(price)) / self.tick).quantize(Decimal(1), ROUND_HALF_EVEN)
        return max(units, Decimal(1)) * self.tick

    def fmt_price(self, price: Decimal | None) -> str:
        value = price if price is not None else Decimal(0)
        return f"{value:.{self.price_precision}f}"

    def fmt_qty(self, qty: Decimal) -> str:
        return f"{qty:.{self.qty_precision}f}"

    def exchange_info(self) -> dict[str, Any]:
        return {
            "symbol": self.id,
            "pair": self.id,
            "contractType": "PERPETUAL",
            "deliveryDate": 4133404800000,
            "onboardDate": 1569398400000,
            "status": "TRADING",
            "maintMarginPercent": "2.5000",
            "requiredMarginPercent": "5.0000",
            "baseAsset": self.base,
            "quoteAsset": self.quote,
            "marginAsset": self.quote,
            "pricePrecision": self.price_precision,
            "quantityPrecision": self.qty_precision,
            "baseAssetPrecision": 8,
            "quotePrecision": 8,
            "underlyingType": "COIN",
            "underlyingSubType": [],
            "settlePlan": 0,
            "triggerProtect": "0.0500",
            "liquidationFee": "0.012500",
            "marketTakeBound": "0.05",
            "maxMoveOrderLimit": 10000,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": str(self.tick),
                    "maxPrice": "4529764",
                    "tickSize": str(self.tick),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": str(self.min_qty),
                    "maxQty": str(self.max_qty),
                    "stepSize": str(self.step),
                },
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "minQty": str(self.min_qty),
                    "maxQty": str(self.market_max_qty),
                    "stepSize": str(self.step),
                },
                {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
                {"filterType": "MIN_NOTIONAL", "notional": str(self.min_notional)},
                {
                    "filterType": "PERCENT_PRICE",
                    "multiplierUp": "1.0500",
                    "multiplierDown": "0.9500",
                    "multiplierDecimal": "4",
                },
            ],
            "orderTypes": ORDER_TYPES,
            "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
            "permissionSet": ["GRID", "COPY"],
        }


_KNOWN = {
    # base: tick, step, min_qty, max_qty, market_max_qty, min_notional
    "BTC": ("0.10", "0.001", "0.001", "1000", "120", "100"),
    "ETH": ("0.01", "0.001", "0.001", "10000", "2000", "20"),
    "BNB": ("0.010", "0.01", "0.01", "100000", "2000", "5"),
    "SOL": ("0.0100", "1", "1", "1000000", "5000", "5"),
}
_DEFAULT = ("0.0010", "0.1", "0.1", "10000000", "100000", "5")


def spec_for(unified: str) -> SymbolSpec:
    """Rules for a unified linear perpetual symbol such as ``BTC/USDT:USDT``."""
    pair, _, settle = unified.partition(":")
    base, _, quote = pair.partition("/")
    if not base or not quote or (settle and settle != quote):
        raise ValueError(f"not a linear perpetual symbol: {unified!r}")
    tick, step, min_qty, max_qty, market_max, notional = _KNOWN.get(base, _DEFAULT)
    return SymbolSpec(
        unified=f"{base}/{quote}:{quote}",
        id=f"{base}{quote}",
        base=base,
        quote=quote,
        tick=Decimal(tick),
        step=Decimal(step),
        min_qty=Decimal(min_qty),
        max_qty=Decimal(max_qty),
        market_max_qty=Decimal(market_max),
        min_notional=Decimal(notional),
    )
