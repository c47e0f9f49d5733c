"""The simulated API in one table: each endpoint's handler, request weight and whether it
must be signed (Binance's security types: market data is public, account and trade data
need the API key, a signature and a fresh timestamp)."""

from __future__ import annotations

from typing import NamedTuple

from trendbotd.sim import routes_account, routes_market, routes_trade
from trendbotd.sim.params import Handler


class Route(NamedTuple):
    handler: Handler
    weight: int
    signed: bool


ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/fapi/v1/ping"): Route(routes_market.ping, 1, signed=False),
    ("GET", "/fapi/v1/time"): Route(routes_market.server_time, 1, signed=False),
    ("GET", "/fapi/v1/exchangeInfo"): Route(routes_market.exchange_info, 1, signed=False),
    ("GET", "/fapi/v1/klines"): Route(routes_market.klines, 5, signed=False),
    ("GET", "/fapi/v1/ticker/price"): Route(routes_market.ticker_price, 1, signed=False),
    ("GET", "/fapi/v2/ticker/price"): Route(routes_market.ticker_price, 1, signed=False),
    ("GET", "/fapi/v1/ticker/24hr"): Route(routes_market.ticker_24h, 1, signed=False),
    ("GET", "/fapi/v1/ticker/bookTicker"): Route(routes_market.book_ticker, 1, signed=False),
    ("GET", "/fapi/v1/premiumIndex"): Route(routes_market.premium_index, 1, signed=False),
    ("GET", "/fapi/v1/depth"): Route(routes_market.depth, 5, signed=False),
    ("GET", "/fapi/v2/account"): Route(routes_account.account_v2, 5, signed=True),
    ("GET", "/fapi/v3/account"): Route(routes_account.account_v3, 5, signed=True),
    ("GET", "/fapi/v2/balance"): Route(routes_account.balance, 5, signed=True),
    ("GET", "/fapi/v3/balance"): Route(routes_account.balance, 5, signed=True),
    ("GET", "/fapi/v2/positionRisk"): Route(routes_account.position_risk_v2, 5, signed=True),
    ("GET", "/fapi/v3/positionRisk"): Route(routes_account.position_risk_v3, 5, signed=True),
    ("GET", "/fapi/v1/leverageBracket"): Route(routes_account.leverage_bracket, 1, signed=True),
    ("POST", "/fapi/v1/leverage"): Route(routes_account.set_leverage, 1, signed=True),
    ("POST", "/fapi/v1/marginType"): Route(routes_account.margin_type, 1, signed=True),
    ("GET", "/fapi/v1/positionSide/dual"): Route(routes_account.get_dual, 30, signed=True),
    ("POST", "/fapi/v1/positionSide/dual"): Route(routes_account.set_dual, 1, signed=True),
    ("GET", "/fapi/v1/multiAssetsMargin"): Route(routes_account.get_multi_assets, 30, signed=True),
    ("POST", "/fapi/v1/multiAssetsMargin"): Route(routes_account.set_multi_assets, 1, signed=True),
    ("GET", "/fapi/v1/userTrades"): Route(routes_account.user_trades, 5, signed=True),
    ("POST", "/fapi/v1/order"): Route(routes_trade.new_order, 0, signed=True),
    ("GET", "/fapi/v1/order"): Route(routes_trade.get_order, 1, signed=True),
    ("DELETE", "/fapi/v1/order"): Route(routes_trade.cancel_order, 1, signed=True),
    ("GET", "/fapi/v1/openOrder"): Route(routes_trade.get_open_order, 1, signed=True),
    ("GET", "/fapi/v1/openOrders"): Route(routes_trade.open_orders, 1, signed=True),
    ("GET", "/fapi/v1/allOrders"): Route(routes_trade.all_orders, 5, signed=True),
    ("DELETE", "/fapi/v1/allOpenOrders"): Route(routes_trade.cancel_all, 1, signed=True),
    ("POST", "/fapi/v1/algoOrder"): Route(routes_trade.new_algo, 0, signed=True),
    ("GET", "/fapi/v1/algoOrder"): Route(routes_trade.get_algo, 1, signed=True),
    ("DELETE", "/fapi/v1/algoOrder"): Route(routes_trade.cancel_algo, 1, signed=True),
    ("GET", "/fapi/v1/openAlgoOrders"): Route(routes_trade.open_algos, 1, signed=True),
    ("GET", "/fapi/v1/allAlgoOrders"): Route(routes_trade.all_algos, 5, signed=True),
    ("DELETE", "/fapi/v1/algoOpenOrders"): Route(routes_trade.cancel_all_algos, 1, signed=True),
}
