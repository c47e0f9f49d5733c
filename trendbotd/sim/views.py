"""Account, position and market payloads in Binance USD-M's wire shape (strings for numbers)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from trendbotd.sim.ledger import ZERO
from trendbotd.sim.state import SimState

BRACKETS = [  # notionalCap, initialLeverage, maintMarginRatio, cum
    (50_000, 125, "0.004", "0.0"),
    (600_000, 100, "0.005", "50.0"),
    (3_000_000, 75, "0.0065", "950.0"),
    (12_000_000, 50, "0.01", "11450.0"),
    (70_000_000, 25, "0.02", "131450.0"),
]


def money(value: Decimal) -> str:
    return f"{value:.8f}"


def maint_ratio(notional: Decimal) -> Decimal:
    for cap, _, ratio, _ in BRACKETS:
        if notional < cap:
            return Decimal(ratio)
    return Decimal(BRACKETS[-1][2])


def _position(state: SimState, sid: str, now: int, *, version: int) -> dict[str, Any]:
    spec, book = state.specs[sid], state.books[sid]
    mark = state.price(sid, now)
    notional = book.amount * mark
    upnl = state.unrealized(sid, now)
    initial = abs(notional) / book.leverage
    maint = abs(notional) * maint_ratio(abs(notional))
    out: dict[str, Any] = {
        "symbol": sid,
        "positionSide": "BOTH",
        "positionAmt": spec.fmt_qty(book.amount),
        "entryPrice": money(book.entry_price),
        "breakEvenPrice": money(book.entry_price),
        "markPrice": money(mark),
        "unRealizedProfit": money(upnl),
        "liquidationPrice": "0",
        "isolatedMargin": "0",
        "notional": money(notional),
        "marginAsset": "USDT",
        "isolatedWallet": "0",
        "initialMargin": money(initial),
        "maintMargin": money(maint),
        "positionInitialMargin": money(initial),
        "openOrderInitialMargin": money(state.open_order_margin(sid)),
        "adl": 0,
        "bidNotional": "0",
        "askNotional": "0",
        "updateTime": book.update_ms,
    }
    if version == 2:
        out.update(
            {
                "leverage": str(book.leverage),
                "marginType": "cross",
                "isAutoAddMargin": "false",
                "maxNotionalValue": str(BRACKETS[0][0] * 1000),
            }
        )
    return out


def position_risk(state: SimState, sid: str | None, now: int, *, version: int) -> list[Any]:
    """v3 lists only symbols with a position or open orders; v2 lists every symbol."""
    out = []
    for s in state.specs:
        if sid is not None and s != sid:
            continue
        active = state.books[s].amount != 0 or any(
            o.is_open and o.spec.id == s for o in state.orders.values()
        )
        if version == 2 or active or sid is not None:
            out.append(_position(state, s, now, version=version))
    return out


def _account_position(entry: dict[str, Any], *, version: int) -> dict[str, Any]:
    """A position as /account lists it, from its /positionRisk v2 entry."""
    keys = ("symbol", "positionSide", "positionAmt", "unrealizedProfit", "isolatedMargin")
    row = {k: entry.get(k, "0") for k in keys}
    row["unrealizedProfit"] = entry["unRealizedProfit"]
    for k in ("notional", "isolatedWallet", "initialMargin", "maintMargin", "updateTime"):
        row[k] = entry[k]
    if version == 2:
        for k in ("leverage", "entryPrice", "breakEvenPrice", "maxNotionalValue"):
            row[k] = entry[k]
        row["maxNotional"] = entry["maxNotionalValue"]
        row["isolated"] = False
        row["positionInitialMargin"] = entry["positionInitialMargin"]
        row["openOrderInitialMargin"] = entry["openOrderInitialMargin"]
        row["bidNotional"] = row["askNotional"] = "0"
    return row


def account(state: SimState, now: int, *, version: int) -> dict[str, Any]:
    upnl = sum((state.unrealized(s, now) for s in state.specs), ZERO)
    position_im = sum((state.position_margin(s, now) for s in state.specs), ZERO)
    order_im = sum((state.open_order_margin(s) for s in state.specs), ZERO)
    maint = ZERO
    positions = []
    for s, book in state.books.items():
        entry = _position(state, s, now, version=2)
        maint += Decimal(entry["maintMargin"])
        if version == 2 or book.amount != 0:
            positions.append(_account_position(entry, version=version))
    available = state.wallet + upnl - position_im - order_im
    totals = {
        "totalInitialMargin": money(position_im + order_im),
        "totalMaintMargin": money(maint),
        "totalWalletBalance": money(state.wallet),
        "totalUnrealizedProfit": money(upnl),
        "totalMarginBalance": money(state.wallet + upnl),
        "totalPositionInitialMargin": money(position_im),
        "totalOpenOrderInitialMargin": money(order_im),
        "totalCrossWalletBalance": money(state.wallet),
        "totalCrossUnPnl": money(upnl),
        "availableBalance": money(available),
        "maxWithdrawAmount": money(max(ZERO, min(available, state.wallet))),
    }
    asset = {
        "asset": "USDT",
        "walletBalance": totals["totalWalletBalance"],
        "unrealizedProfit": totals["totalUnrealizedProfit"],
        "marginBalance": totals["totalMarginBalance"],
        "maintMargin": totals["totalMaintMargin"],
        "initialMargin": totals["totalInitialMargin"],
        "positionInitialMargin": totals["totalPositionInitialMargin"],
        "openOrderInitialMargin": totals["totalOpenOrderInitialMargin"],
        "crossWalletBalance": totals["totalCrossWalletBalance"],
        "crossUnPnl": totals["totalCrossUnPnl"],
        "availableBalance": totals["availableBalance"],
        "maxWithdrawAmount": totals["maxWithdrawAmount"],
        "updateTime": state.wallet_update_ms or now,
    }
    out: dict[str, Any] = dict(totals)
    if version == 2:
        asset["marginAvailable"] = True
        out.update({"feeTier": 0, "canTrade": True, "canDeposit": True, "canWithdraw": True})
        out["updateTime"] = 0
    out["assets"] = [asset]
    out["positions"] = positions
    return out


def leverage_brackets(state: SimState, sid: str | None) -> list[dict[str, Any]] | dict[str, Any]:
    def entry(s: str) -> dict[str, Any]:
        floor = 0
        brackets = []
        for i, (cap, lev, ratio, cum) in enumerate(BRACKETS, start=1):
            brackets.append(
                {
                    "bracket": i,
                    "initialLeverage": lev,
                    "notionalCap": cap,
                    "notionalFloor": floor,
                    "maintMarginRatio": float(ratio),
                    "cum": float(cum),
                }
            )
            floor = cap
        return {"symbol": s, "notionalCoef": 1.0, "brackets": brackets}

    if sid is not None:
        return entry(sid)
    return [entry(s) for s in state.specs]
