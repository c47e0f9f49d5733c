"""Signed account endpoints: balances, positions, leverage, position and asset modes."""

from __future__ import annotations

from typing import Any

from trendbotd.sim import errors, views
from trendbotd.sim.params import Call


def account_v2(call: Call) -> Any:
    with call.desk.synced() as now:
        return views.account(call.state, now, version=2)


def account_v3(call: Call) -> Any:
    with call.desk.synced() as now:
        return views.account(call.state, now, version=3)


def balance(call: Call) -> Any:
    with call.desk.synced() as now:
        acct = views.account(call.state, now, version=3)
        asset = acct["assets"][0]
        return [
            {
                "accountAlias": "SgsR",
                "asset": "USDT",
                "balance": asset["walletBalance"],
                "crossWalletBalance": asset["crossWalletBalance"],
                "crossUnPnl": asset["crossUnPnl"],
                "availableBalance": asset["availableBalance"],
                "maxWithdrawAmount": asset["maxWithdrawAmount"],
                "marginAvailable": True,
                "updateTime": asset["updateTime"],
            }
        ]


def position_risk_v2(call: Call) -> Any:
    spec = call.spec(required=False)
    with call.desk.synced() as now:
        return views.position_risk(call.state, spec.id if spec else None, now, version=2)


def position_risk_v3(call: Call) -> Any:
    spec = call.spec(required=False)
    with call.desk.synced() as now:
        return views.position_risk(call.state, spec.id if spec else None, now, version=3)


def leverage_bracket(call: Call) -> Any:
    spec = call.spec(required=False)
    return views.leverage_brackets(call.state, spec.id if spec else None)


def set_leverage(call: Call) -> Any:
    spec = call.symbol()
    leverage = call.integer("leverage")
    if leverage is None:
        raise errors.mandatory("leverage")
    if not 1 <= leverage <= spec.max_leverage:
        raise errors.SimError(-4028, f"Leverage {leverage} is not valid")
    with call.desk.synced():
        call.state.set_leverage(spec.id, leverage)
    return {"leverage": leverage, "maxNotionalValue": "50000000", "symbol": spec.id}


def margin_type(call: Call) -> Any:
    call.symbol()
    kind = call.text("marginType").upper()
    if kind in ("CROSSED", "CROSS"):
        raise errors.SimError(-4046, "No need to change margin type.")
    raise errors.SimError(-4047, "The simulated exchange trades cross margin only.")


def get_dual(call: Call) -> Any:
    return {"dualSidePosition": call.state.dual_side}


def set_dual(call: Call) -> Any:
    wanted = call.flag("dualSidePosition")
    with call.desk.synced():
        if wanted == call.state.dual_side:
            raise errors.SimError(-4059, "No need to change position side.")
        if any(b.amount != 0 for b in call.state.books.values()):
            raise errors.SimError(
                -4068, "Position side cannot be changed if there exists position."
            )
        call.state.set_hedge_mode(wanted)
    return {"code": 200, "msg": "success"}


def get_multi_assets(call: Call) -> Any:
    return {"multiAssetsMargin": call.state.multi_assets}


def set_multi_assets(call: Call) -> Any:
    wanted = call.flag("multiAssetsMargin")
    with call.desk.synced():
        call.state.set_multi_assets(wanted)
    return {"code": 200, "msg": "success"}


def user_trades(call: Call) -> Any:
    spec = call.symbol()
    limit = min(call.integer("limit", 500) or 500, 1000)
    start = call.integer("startTime")
    with call.desk.synced():
        rows = []
        for f in call.state.fills:
            if f.symbol != spec.id or (start is not None and f.at_ms < start):
                continue
            rows.append(
                {
                    "buyer": f.side == "BUY",
                    "commission": views.money(f.fee),
                    "commissionAsset": "USDT",
                    "id": f.trade_id,
                    "maker": f.maker,
                    "orderId": f.order_id,
                    "price": spec.fmt_price(f.price),
                    "qty": spec.fmt_qty(f.qty),
                    "quoteQty": views.money(f.qty * f.price),
                    "realizedPnl": views.money(f.realized_pnl),
                    "side": f.side,
                    "positionSide": "BOTH",
                    "symbol": spec.id,
                    "time": f.at_ms,
                }
            )
        return rows[-limit:]
