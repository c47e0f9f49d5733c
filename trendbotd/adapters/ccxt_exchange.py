"""The Exchange port over ccxt (Binance USD-M first).

- ccxt is imported when an adapter is built, not when this module is imported, and only the
  one exchange class (``ccxt_build.load_exchange_class``, which also builds the client).
- ``base_url`` rewrites every API URL (paths kept), so nothing can reach a real host; the
  client subclass then still picks Binance's USD-M error table for that URL.
- Request timestamps are the daemon clock plus the measured exchange offset (``nonce``),
  less the measurement's uncertainty so that none is ahead of the exchange's clock
  (``timesync.signing_offset_ms``); never ccxt's one-shot ``timeDifference``; the host
  clock is never changed.
- ccxt's rate limiter (``rate_limit``) paces by a token bucket in ccxt's cost units
  (Binance request weight): ``rate_limit_burst`` units at once, then ccxt's own pace of one
  unit per ``rateLimit`` ms (1200/min). 600 + 1200 stays under USD-M's 2400/min in any minute.
- Every ccxt error is translated here (trendbotd.adapters.ccxt_errors). Reads retry with
  bounded backoff (``trendbotd.core.retry.DEFAULT_READ_RETRY``: at most 4 requests, none
  started after 10 s); order-changing calls never retry and raise OutcomeUnknownError when
  the request may have executed.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from trendbotd.adapters import binance_parse as parse
from trendbotd.adapters.ccxt_build import (
    build_client,
    ccxt_config,
    load_exchange_class,
    time_url,
)
from trendbotd.adapters.ccxt_calls import CcxtCalls
from trendbotd.adapters.governor import GovernorSettings
from trendbotd.adapters.weight_budget import Priority
from trendbotd.core.clock import Clock
from trendbotd.core.domain import (
    AccountMode,
    Balance,
    Candle,
    ClockOffset,
    Market,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
)
from trendbotd.core.retry import DEFAULT_READ_RETRY, RetryPolicy
from trendbotd.errors import (
    ConfigError,
    ExchangeError,
    OrderNotFoundError,
    OutcomeUnknownError,
    TransientExchangeError,
    UnsupportedAccountModeError,
)

__all__ = ["CcxtExchange", "load_exchange_class"]

logger = logging.getLogger(__name__)


class CcxtExchange(CcxtCalls):
    """trendbotd.core.ports.Exchange over one ccxt client. Not thread-safe: one caller at a time."""

    def __init__(
        self,
        *,
        exchange_id: str,
        api_key: str,
        api_secret: str,
        base_url: str | None,
        demo: bool,
        recv_window_ms: int,
        timeout_s: float,
        clock: Clock,
        rate_limit: bool = True,
        max_clock_offset_ms: int = 500,
        clock_resync_s: float = 600.0,
        clock_samples: int = 5,
        read_retry: RetryPolicy | None = None,
        rate_limit_burst: int = 600,
        single_import: bool = True,
        governor: GovernorSettings | None = None,
    ) -> None:
        """``governor``: the request-weight budget every request asks first (None: none,
        e.g. the simulator in paper mode)."""
        config = ccxt_config(
            api_key=api_key, api_secret=api_secret, rate_limit=rate_limit,
            timeout_s=timeout_s, recv_window_ms=recv_window_ms,
        )  # fmt: skip
        client, base_error = build_client(
            exchange_id,
            config,
            clock=clock,
            base_url=base_url,
            demo=demo,
            burst=rate_limit_burst,
            single_import=single_import,
            governor=governor,
            offset_ms=lambda: self.server_now_ms() - clock.now_ms(),
        )
        super().__init__(
            client=client,
            base_error=base_error,
            clock=clock,
            exchange_id=exchange_id,
            max_clock_offset_ms=max_clock_offset_ms,
            clock_resync_s=clock_resync_s,
            clock_samples=clock_samples,
            read_retry=read_retry or DEFAULT_READ_RETRY,
            rate_limit=rate_limit,
        )
        self._time_url = time_url(client, exchange_id)
        self._settle = "USDT"

    @property
    def api_urls(self) -> dict[str, Any]:
        """A copy of the client's API URL table (to check where requests can go)."""
        return dict(self._client.urls["api"])

    # ----- the Exchange port -----

    def load_markets(self, symbols: Sequence[str]) -> dict[str, Market]:
        markets = self._read("load_markets", lambda: self._client.load_markets(True))
        result: dict[str, Market] = {}
        for symbol in symbols:
            m = markets.get(symbol)
            if m is None:
                raise ConfigError(f"trading.symbols: {symbol} is not listed by {self._id}")
            if not (m.get("swap") and m.get("linear")):
                raise ConfigError(f"trading.symbols: {symbol} is not a linear perpetual")
            if m.get("active") is False:
                status = m.get("info", {}).get("status")
                raise TransientExchangeError(f"{symbol} is not trading (status {status})")
            result[symbol] = parse.market(symbol, m["info"])
        if symbols:
            first = markets[symbols[0]]
            self._settle = str(first.get("settle") or first["info"].get("marginAsset") or "USDT")
        return result

    def measure_clock(self) -> ClockOffset:
        return self._measure(self._time_sample)

    def fetch_account_mode(self) -> AccountMode:
        dual = self._read("fetch_position_mode", self._client.fapiPrivateGetPositionSideDual)
        multi = self._read("fetch_multi_assets", self._client.fapiPrivateGetMultiAssetsMargin)
        mode, multi_assets = parse.account_mode(
            dual_side=dual.get("dualSidePosition"), multi_assets=multi.get("multiAssetsMargin")
        )
        if multi_assets:
            raise UnsupportedAccountModeError(
                "the account is in multi-assets margin mode; the bot trades single-asset "
                "margin only (switch it off in the futures preferences)"
            )
        return mode

    def fetch_balance(self) -> Balance:
        raw = self._read("fetch_balance", self._client.fetch_balance)
        return parse.balance(raw["info"], self._settle)

    def fetch_positions(self, symbols: Sequence[str]) -> list[Position]:
        wanted = list(symbols)
        rows = self._read("fetch_positions", lambda: self._client.fetch_positions(wanted))
        positions = [parse.position(r["symbol"], r["info"]) for r in rows if r["symbol"] in wanted]
        return [p for p in positions if not p.is_flat]

    def fetch_open_orders(self, symbols: Sequence[str]) -> list[Order]:
        orders: list[Order] = []
        for symbol in symbols:
            for params in ({}, {"trigger": True}):  # plain orders, then algo (conditional) ones

                def fetch(s: str = symbol, p: dict[str, Any] = params) -> Any:
                    return self._client.fetch_open_orders(s, None, None, p)

                rows = self._read("fetch_open_orders", fetch)
                orders.extend(parse.order(symbol, r["info"]) for r in rows)
        return orders

    def fetch_candles(
        self, symbol: str, *, timeframe: str, since_ms: int | None, limit: int
    ) -> list[Candle]:
        rows = self._read(
            "fetch_ohlcv",
            lambda: self._client.fetch_ohlcv(symbol, timeframe, since_ms, limit),
            priority=Priority.CANDLES,
        )
        return [
            Candle(int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5] or 0))
            for r in rows
        ]

    def create_order(self, request: OrderRequest) -> Order:
        """Send once. RateLimitedError/ClockNotSyncedError/TransientExchangeError mean it
        was not sent; OutcomeUnknownError means ask by client order id before anything else."""
        r = request
        params: dict[str, Any] = {"clientOrderId": r.client_order_id}
        if r.reduce_only:
            params["reduceOnly"] = True
        price: str | None = None
        if r.type is OrderType.LIMIT:
            if r.price is None:
                raise ValueError("a limit order needs a price")
            price, kind = str(r.price), "limit"
        elif r.type is OrderType.STOP_MARKET:
            if r.stop_price is None:
                raise ValueError("a stop-market order needs a stop_price")
            params["triggerPrice"] = str(r.stop_price)
            kind = "STOP_MARKET"
        else:
            kind = "market"
        reply = self._change(
            "create_order",
            r.client_order_id,
            lambda: self._client.create_order(
                r.symbol, kind, r.side.value, str(r.amount), price, params
            ),
            # a reduce-only order is a protective stop or a close: it goes first
            priority=Priority.PROTECT if r.reduce_only else Priority.ENTRY,
            new_order=True,
            protective=r.reduce_only,
        )
        try:
            order = parse.order(r.symbol, reply["info"])
        except (ExchangeError, KeyError, TypeError) as e:
            raise OutcomeUnknownError(
                f"create_order: accepted but the reply is unreadable: {e}",
                client_order_id=r.client_order_id,
            ) from e
        if order.amount != r.amount or order.client_order_id != r.client_order_id:
            logger.warning(
                "order.reply_differs cid=%s sent_amount=%s amount=%s reply_cid=%s",
                r.client_order_id,
                r.amount,
                order.amount,
                order.client_order_id,
            )
        return order

    def fetch_order_by_client_id(
        self, symbol: str, client_order_id: str, *, conditional: bool
    ) -> Order | None:
        params: dict[str, Any] = {"clientOrderId": client_order_id}
        if conditional:
            params["trigger"] = True
        try:
            reply = self._read(
                "fetch_order", lambda: self._client.fetch_order(None, symbol, params)
            )
        except OrderNotFoundError as e:
            if self.confirms_absence(e):
                return None
            raise
        return parse.order(symbol, reply["info"])

    def cancel_order_by_client_id(
        self, symbol: str, client_order_id: str, *, conditional: bool
    ) -> Order:
        params: dict[str, Any] = {"clientOrderId": client_order_id}
        before: Order | None = None
        if conditional:
            # Binance answers an algo cancel with ids only: read the order first.
            params["trigger"] = True
            before = self.fetch_order_by_client_id(symbol, client_order_id, conditional=True)
            if before is None:
                raise OrderNotFoundError(f"cancel_order: no conditional order {client_order_id}")
        reply = self._change(
            "cancel_order",
            client_order_id,
            lambda: self._client.cancel_order(None, symbol, params),
            priority=Priority.CANCEL,
            new_order=False,
            protective=True,
        )
        info = reply.get("info") or {}
        if before is None or "algoStatus" in info:
            return parse.order(symbol, info)
        return dataclasses.replace(
            before, status=OrderStatus.CANCELED, updated_ms=self.server_now_ms()
        )

    def set_leverage(self, symbol: str, leverage: int) -> None:
        # Idempotent (same value twice is a no-op), so retried like a read.
        self._read("set_leverage", lambda: self._client.set_leverage(leverage, symbol))

    def close(self) -> None:
        session = getattr(self._client, "session", None)
        if session is not None:
            session.close()

    # ----- clock -----

    def _time_sample(self) -> tuple[int, int, int]:
        """(local send, server, local receive). Binance: GET /fapi/v1/time straight through
        ``fetch`` so the rate limiter's sleep does not land inside the measured round trip."""
        client = self._client
        if self._time_url is None:
            send = self._clock.now_ms()
            server = int(client.fetch_time())
            return send, server, self._clock.now_ms()
        if self._rate_limit:
            client.throttle(1)
        client.trendbot_admit(Priority.SYNC, weight=1)
        send = self._clock.now_ms()
        reply = client.fetch(self._time_url, "GET")
        recv = self._clock.now_ms()
        return send, int(reply["serverTime"]), recv


if TYPE_CHECKING:  # the adapter must keep satisfying the port
    from trendbotd.core.ports import Exchange

    _PORT_CHECK: type[Exchange] = CcxtExchange
