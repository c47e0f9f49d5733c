"""Binance USD-M wire payloads (ccxt's ``info``) -> trendbotd.core.domain types.

Pure functions on the exchange's own strings: money goes straight from the payload's
decimal strings into Decimal, never through ccxt's floats. Anything unexpected raises
ExchangeError rather than guessing a value.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from trendbotd.core.domain import (
    ZERO,
    AccountMode,
    Balance,
    Market,
    Order,
    OrderStatus,
    OrderType,
    Position,
    Side,
)
from trendbotd.errors import ExchangeError

logger = logging.getLogger(__name__)

_PLAIN_STATUS = {
    "NEW": OrderStatus.OPEN,
    "PARTIALLY_FILLED": OrderStatus.OPEN,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,
}
# Algo (conditional) orders: TRIGGERING is still on its way to the book; TRIGGERED/FINISHED
# mean the trigger fired and the resulting order was placed.
_ALGO_STATUS = {
    "NEW": OrderStatus.OPEN,
    "TRIGGERING": OrderStatus.OPEN,
    "TRIGGERED": OrderStatus.FILLED,
    "FINISHED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "CANCELLED": OrderStatus.CANCELED,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
}


def decimal(payload: Mapping[str, Any], key: str, *, default: Decimal | None = None) -> Decimal:
    value = payload.get(key)
    if value is None or value == "":
        if default is not None:
            return default
        raise ExchangeError(f"exchange payload lacks {key!r}")
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        raise ExchangeError(f"exchange payload {key!r} is not a number: {value!r}") from None
    if not result.is_finite():
        raise ExchangeError(f"exchange payload {key!r} is not finite: {value!r}")
    return result


def _optional_price(payload: Mapping[str, Any], key: str) -> Decimal | None:
    value = decimal(payload, key, default=ZERO)
    return value if value != 0 else None


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ExchangeError(f"exchange payload flag is neither true nor false: {value!r}")


def _int(payload: Mapping[str, Any], key: str, default: int = 0) -> int:
    value = payload.get(key)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ExchangeError(f"exchange payload {key!r} is not an integer: {value!r}") from None


def _side(payload: Mapping[str, Any]) -> Side:
    side = str(payload.get("side", "")).upper()
    if side == "BUY":
        return Side.BUY
    if side == "SELL":
        return Side.SELL
    raise ExchangeError(f"exchange payload has an unknown side {side!r}")


def market(symbol: str, info: Mapping[str, Any]) -> Market:
    """A symbol's trading rules from its exchangeInfo entry."""
    filters = {f.get("filterType"): f for f in info.get("filters", []) if isinstance(f, dict)}
    lot, price = filters.get("LOT_SIZE"), filters.get("PRICE_FILTER")
    if lot is None or price is None:
        raise ExchangeError(f"{symbol}: exchangeInfo lacks LOT_SIZE or PRICE_FILTER")
    notional = filters.get("MIN_NOTIONAL", {})
    return Market(
        symbol=symbol,
        exchange_symbol=str(info["symbol"]),
        amount_step=decimal(lot, "stepSize"),
        price_step=decimal(price, "tickSize"),
        min_amount=decimal(lot, "minQty"),
        min_notional=decimal(notional, "notional", default=ZERO),
    )


def balance(account: Mapping[str, Any], currency: str) -> Balance:
    """The settle currency's row of GET /fapi/v2|v3/account: equity and available."""
    for asset in account.get("assets", []):
        if isinstance(asset, dict) and asset.get("asset") == currency:
            wallet = decimal(asset, "walletBalance")
            upnl = decimal(asset, "unrealizedProfit", default=ZERO)
            total = decimal(asset, "marginBalance", default=wallet + upnl)
            return Balance(currency, total, decimal(asset, "availableBalance"))
    raise ExchangeError(f"account payload has no {currency} asset")


def position(symbol: str, info: Mapping[str, Any]) -> Position:
    """One positionRisk row (one-way mode: positionSide BOTH)."""
    side = str(info.get("positionSide", "BOTH")).upper()
    if side != "BOTH":
        raise ExchangeError(f"{symbol}: position side {side} (hedge mode) is not supported")
    leverage = info.get("leverage")
    return Position(
        symbol=symbol,
        amount=decimal(info, "positionAmt"),
        entry_price=decimal(info, "entryPrice", default=ZERO),
        unrealized_pnl=decimal(info, "unRealizedProfit", default=ZERO),
        leverage=int(leverage) if leverage not in (None, "") else None,
    )


def account_mode(*, dual_side: Any, multi_assets: Any) -> tuple[AccountMode, bool]:
    """(position mode, multi-assets margin on?) from the two mode endpoints."""
    mode = AccountMode.HEDGE if _flag(dual_side) else AccountMode.ONE_WAY
    return mode, _flag(multi_assets)


def is_algo(info: Mapping[str, Any]) -> bool:
    return "algoId" in info or "clientAlgoId" in info


def order(symbol: str, info: Mapping[str, Any]) -> Order:
    """A plain order (GET/POST/DELETE /fapi/v1/order) or an algo order (/fapi/v1/algoOrder)."""
    return _algo_order(symbol, info) if is_algo(info) else _plain_order(symbol, info)


def _status(table: Mapping[str, OrderStatus], raw: Any, symbol: str) -> OrderStatus:
    status = table.get(str(raw).upper())
    if status is None:
        raise ExchangeError(f"{symbol}: unknown order status {raw!r}")
    return status


def _order_type(raw: str, *, symbol: str, cid: str) -> OrderType:
    kind = raw.upper()
    if kind == "MARKET":
        return OrderType.MARKET
    if kind == "LIMIT":
        return OrderType.LIMIT
    if kind != "STOP_MARKET":
        # A type the bot never sends (operator's take-profit, trailing stop): keep the order
        # visible as a conditional one rather than dropping it from the sync.
        logger.warning(
            "exchange.order_type_approximated symbol=%s cid=%s type=%s", symbol, cid, kind
        )
    return OrderType.STOP_MARKET


def _plain_order(symbol: str, info: Mapping[str, Any]) -> Order:
    cid = str(info.get("clientOrderId", ""))
    raw_type = str(info.get("origType") or info.get("type") or "")
    return Order(
        symbol=symbol,
        side=_side(info),
        type=_order_type(raw_type, symbol=symbol, cid=cid),
        amount=decimal(info, "origQty"),
        filled=decimal(info, "executedQty", default=ZERO),
        status=_status(_PLAIN_STATUS, info.get("status"), symbol),
        client_order_id=cid,
        exchange_order_id=str(info.get("orderId", "")),
        price=_optional_price(info, "price"),
        average_price=_optional_price(info, "avgPrice"),
        stop_price=_optional_price(info, "stopPrice"),
        reduce_only=_flag(info.get("reduceOnly", False)) or _flag(info.get("closePosition", False)),
        conditional=False,
        updated_ms=_int(info, "updateTime", _int(info, "time")),
    )


def _algo_order(symbol: str, info: Mapping[str, Any]) -> Order:
    """``filled`` stays 0 for a conditional order: its fill belongs to the order the trigger
    placed (``actualOrderId``); ``average_price`` is that order's price when known."""
    cid = str(info.get("clientAlgoId", ""))
    raw_type = str(info.get("orderType") or info.get("type") or "")
    return Order(
        symbol=symbol,
        side=_side(info),
        type=_order_type(raw_type, symbol=symbol, cid=cid),
        amount=decimal(info, "quantity", default=ZERO),
        filled=ZERO,
        status=_status(_ALGO_STATUS, info.get("algoStatus"), symbol),
        client_order_id=cid,
        exchange_order_id=str(info.get("algoId", "")),
        price=_optional_price(info, "price"),
        average_price=_optional_price(info, "actualPrice"),
        stop_price=decimal(info, "triggerPrice"),
        reduce_only=_flag(info.get("reduceOnly", False)) or _flag(info.get("closePosition", False)),
        conditional=True,
        updated_ms=_int(info, "updateTime", _int(info, "createTime")),
    )
