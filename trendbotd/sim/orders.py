"""Orders and algo (conditional) orders of the simulated exchange and their wire form."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from trendbotd.sim.specs import SymbolSpec

ZERO = Decimal(0)
OPEN_STATUSES = ("NEW", "PARTIALLY_FILLED")


@dataclass(slots=True)
class SimOrder:
    """A plain order (MARKET or LIMIT) as Binance keeps it."""

    spec: SymbolSpec
    order_id: int
    client_id: str
    side: str  # BUY | SELL
    type: str  # MARKET | LIMIT | STOP_MARKET ... (origType of a triggered algo order)
    qty: Decimal
    price: Decimal  # 0 for market orders
    reduce_only: bool
    time_in_force: str
    created_ms: int
    status: str = "NEW"
    executed: Decimal = ZERO
    cum_quote: Decimal = ZERO
    update_ms: int = 0
    close_position: bool = False
    stop_price: Decimal = ZERO
    orig_type: str = ""
    realized_pnl: Decimal = ZERO
    commission: Decimal = ZERO

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def avg_price(self) -> Decimal:
        return self.cum_quote / self.executed if self.executed > 0 else ZERO

    def record_fill(self, qty: Decimal, price: Decimal, now_ms: int) -> None:
        self.executed += qty
        self.cum_quote += qty * price
        self.update_ms = now_ms
        self.status = "FILLED" if self.executed >= self.qty else "PARTIALLY_FILLED"

    def wire(self, *, ack: bool = False) -> dict[str, Any]:
        s = self.spec
        executed = ZERO if ack else self.executed
        cum_quote = ZERO if ack else self.cum_quote
        avg = ZERO if ack else self.avg_price
        return {
            "orderId": self.order_id,
            "symbol": s.id,
            "status": "NEW" if ack else self.status,
            "clientOrderId": self.client_id,
            "price": s.fmt_price(self.price),
            "avgPrice": f"{avg:.8f}",
            "origQty": s.fmt_qty(self.qty),
            "executedQty": s.fmt_qty(executed),
            "cumQty": s.fmt_qty(executed),
            "cumQuote": f"{cum_quote:.8f}",
            "timeInForce": self.time_in_force,
            "type": self.type,
            "reduceOnly": self.reduce_only,
            "closePosition": self.close_position,
            "side": self.side,
            "positionSide": "BOTH",
            "stopPrice": s.fmt_price(self.stop_price),
            "workingType": "CONTRACT_PRICE",
            "priceProtect": False,
            "origType": self.orig_type or self.type,
            "priceMatch": "NONE",
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "goodTillDate": 0,
            "time": self.created_ms,
            "updateTime": self.created_ms if ack else self.update_ms,
        }


@dataclass(slots=True)
class SimAlgoOrder:
    """A conditional order of the algo-order API (STOP_MARKET, TAKE_PROFIT_MARKET, ...)."""

    spec: SymbolSpec
    algo_id: int
    client_algo_id: str
    side: str
    order_type: str  # STOP_MARKET | TAKE_PROFIT_MARKET | STOP | TAKE_PROFIT
    qty: Decimal  # 0 with closePosition
    trigger_price: Decimal
    price: Decimal
    reduce_only: bool
    close_position: bool
    time_in_force: str
    created_ms: int
    status: str = "NEW"  # NEW -> FINISHED | CANCELED | EXPIRED
    update_ms: int = 0
    trigger_ms: int = 0
    actual_order_id: int | None = None
    actual_price: Decimal = ZERO

    @property
    def is_open(self) -> bool:
        return self.status == "NEW"

    def triggered_by(self, price: float) -> bool:
        """Binance: STOP buys trigger at or above, sells at or below; TAKE_PROFIT the opposite."""
        at_or_above = (self.side == "BUY") == self.order_type.startswith("STOP")
        trigger = float(self.trigger_price)
        return price >= trigger if at_or_above else price <= trigger

    def wire(self) -> dict[str, Any]:
        s = self.spec
        return {
            "algoId": self.algo_id,
            "clientAlgoId": self.client_algo_id,
            "algoType": "CONDITIONAL",
            "orderType": self.order_type,
            "symbol": s.id,
            "side": self.side,
            "positionSide": "BOTH",
            "timeInForce": self.time_in_force,
            "quantity": s.fmt_qty(self.qty),
            "algoStatus": self.status,
            "actualOrderId": "" if self.actual_order_id is None else str(self.actual_order_id),
            "actualPrice": "" if self.actual_order_id is None else f"{self.actual_price:.8f}",
            "triggerPrice": s.fmt_price(self.trigger_price),
            "price": s.fmt_price(self.price),
            "icebergQuantity": None,
            "tpTriggerPrice": "0.00",
            "tpPrice": "0.00",
            "slTriggerPrice": "0.00",
            "slPrice": "0.00",
            "tpOrderType": "",
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "workingType": "CONTRACT_PRICE",
            "priceMatch": "NONE",
            "closePosition": self.close_position,
            "priceProtect": False,
            "reduceOnly": self.reduce_only,
            "createTime": self.created_ms,
            "updateTime": self.update_ms or self.created_ms,
            "triggerTime": self.trigger_ms,
            "goodTillDate": 0,
        }
