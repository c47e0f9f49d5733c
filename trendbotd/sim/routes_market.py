"""Public market-data endpoints: time, exchangeInfo, klines, tickers, mark price."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from trendbotd.sim import errors
from trendbotd.sim.market import TIMEFRAMES_MS, align
from trendbotd.sim.params import Call, Handler

MAX_KLINES = 1500


def ping(call: Call) -> Any:
    return {}


def server_time(call: Call) -> Any:
    return {"serverTime": call.now}


def exchange_info(call: Call) -> Any:
    return {
        "timezone": "UTC",
        "serverTime": call.now,
        "futuresType": "U_MARGINED",
        "rateLimits": [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": 2400,
            },
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
        ],
        "exchangeFilters": [],
        "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
        "symbols": [spec.exchange_info() for spec in call.state.specs.values()],
    }


def klines(call: Call) -> Any:
    """Candles whose open time is <= now, oldest first; the last one may still be forming."""
    spec = call.symbol()
    interval = TIMEFRAMES_MS.get(call.text("interval"))
    if interval is None:
        raise errors.invalid_interval()
    limit = call.integer("limit", 500) or 500
    if not 1 <= limit <= MAX_KLINES:
        raise errors.SimError(-1130, "Invalid data sent for a parameter.")
    start, end = call.integer("startTime"), call.integer("endTime")
    last_open = align(call.now, interval)
    if end is not None:
        last_open = min(last_open, align(end, interval))
    if start is not None:
        first_open = align(start, interval)
        if first_open < start:
            first_open += interval
        last_open = min(last_open, first_open + (limit - 1) * interval)
    else:
        first_open = last_open - (limit - 1) * interval
    tape = call.state.tapes[spec.id]
    pin = call.state.pinned(spec.id)
    rows = []
    for open_ms in range(first_open, last_open + 1, interval):
        bar = tape.window(open_ms, open_ms + interval, call.now + 1)
        high, low, close = bar.high, bar.low, bar.close
        if pin is not None and open_ms + interval > call.now:
            close = float(pin)
            high, low = max(high, close), min(low, close)
        volume = f"{bar.volume:.3f}"
        quote_volume = f"{bar.volume * close:.4f}"
        rows.append(
            [
                open_ms,
                spec.fmt_price(spec.round_price(bar.open)),
                spec.fmt_price(spec.round_price(high)),
                spec.fmt_price(spec.round_price(low)),
                spec.fmt_price(spec.round_price(close)),
                volume,
                open_ms + interval - 1,
                quote_volume,
                max(1, int(bar.volume * 10)),
                f"{bar.volume / 2:.3f}",
                f"{bar.volume * close / 2:.4f}",
                "0",
            ]
        )
    return rows


def _each(call: Call, one: Handler) -> Any:
    spec = call.spec(required=False)
    if spec is not None:
        return one(call)
    out = []
    for sid in call.state.specs:
        params = dict(call.params)
        params["symbol"] = sid
        out.append(one(replace(call, params=params, fill_cap=None)))
    return out


def _ticker_price(call: Call) -> Any:
    spec = call.symbol()
    price = call.state.price(spec.id, call.now)
    return {"symbol": spec.id, "price": spec.fmt_price(price), "time": call.now}


def ticker_price(call: Call) -> Any:
    return _each(call, _ticker_price)


def _premium_index(call: Call) -> Any:
    spec = call.symbol()
    mark = spec.fmt_price(call.state.price(spec.id, call.now))
    next_funding = (call.now // 28_800_000 + 1) * 28_800_000
    return {
        "symbol": spec.id,
        "markPrice": mark,
        "indexPrice": mark,
        "estimatedSettlePrice": mark,
        "lastFundingRate": "0.00010000",
        "interestRate": "0.00010000",
        "nextFundingTime": next_funding,
        "time": call.now,
    }


def premium_index(call: Call) -> Any:
    return _each(call, _premium_index)


def _ticker_24h(call: Call) -> Any:
    spec = call.symbol()
    tape = call.state.tapes[spec.id]
    start = call.now - 86_400_000
    bar = tape.window(start, call.now + 1, call.now + 1)
    last = call.state.price(spec.id, call.now)
    change = last - spec.round_price(bar.open)
    return {
        "symbol": spec.id,
        "priceChange": spec.fmt_price(change),
        "priceChangePercent": f"{change / spec.round_price(bar.open) * 100:.3f}",
        "weightedAvgPrice": spec.fmt_price(last),
        "lastPrice": spec.fmt_price(last),
        "lastQty": spec.fmt_qty(spec.min_qty),
        "openPrice": spec.fmt_price(spec.round_price(bar.open)),
        "highPrice": spec.fmt_price(max(spec.round_price(bar.high), last)),
        "lowPrice": spec.fmt_price(min(spec.round_price(bar.low), last)),
        "volume": f"{bar.volume:.3f}",
        "quoteVolume": f"{bar.volume * float(last):.2f}",
        "openTime": start,
        "closeTime": call.now,
        "firstId": 1,
        "lastId": 2,
        "count": 2,
    }


def ticker_24h(call: Call) -> Any:
    return _each(call, _ticker_24h)


def _book_ticker(call: Call) -> Any:
    spec = call.symbol()
    price = call.state.price(spec.id, call.now)
    return {
        "symbol": spec.id,
        "bidPrice": spec.fmt_price(price),
        "bidQty": "10",
        "askPrice": spec.fmt_price(price + spec.tick),
        "askQty": "10",
        "time": call.now,
    }


def book_ticker(call: Call) -> Any:
    return _each(call, _book_ticker)


def depth(call: Call) -> Any:
    spec = call.symbol()
    price = call.state.price(spec.id, call.now)
    limit = min(call.integer("limit", 20) or 20, 100)
    qty = spec.fmt_qty(spec.min_qty * 100)
    return {
        "lastUpdateId": call.now,
        "E": call.now,
        "T": call.now,
        "bids": [[spec.fmt_price(price - spec.tick * i), qty] for i in range(limit)],
        "asks": [[spec.fmt_price(price + spec.tick * (i + 1)), qty] for i in range(limit)],
    }
