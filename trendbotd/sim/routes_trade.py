"""Signed trading endpoints: orders and algo (conditional) orders."""

from __future__ import annotations

from typing import Any

from trendbotd.sim import errors
from trendbotd.sim.ledger import ZERO
from trendbotd.sim.orders import SimAlgoOrder, SimOrder
from trendbotd.sim.params import Call, Handler, check_price, check_qty
from trendbotd.sim.state import NewOrder

PLAIN_TYPES = ("MARKET", "LIMIT")
ALGO_TYPES = ("STOP_MARKET", "TAKE_PROFIT_MARKET", "STOP", "TAKE_PROFIT")
CONDITIONAL_TYPES = (*ALGO_TYPES, "TRAILING_STOP_MARKET")
TIME_IN_FORCE = ("GTC", "IOC", "FOK", "GTX", "GTD")
MAX_CLIENT_ID = 36


def _side(call: Call) -> str:
    side = call.text("side").upper()
    if side not in ("BUY", "SELL"):
        raise errors.SimError(-1117, "Invalid side.")
    return side


def _position_side(call: Call) -> None:
    wanted = (call.optional("positionSide") or "BOTH").upper()
    if wanted not in ("BOTH", "LONG", "SHORT"):
        raise errors.SimError(-4006, "Invalid position side.")
    if wanted != "BOTH" and not call.state.dual_side:
        raise errors.position_side_mismatch()


def _client_id(call: Call, name: str) -> str:
    cid = call.optional(name) or ""
    if len(cid) > MAX_CLIENT_ID or any(not (c.isalnum() or c in ".:/_-") for c in cid):
        raise errors.SimError(-1100, f"Illegal characters found in parameter '{name}'.")
    return cid


def _tif(call: Call) -> str:
    tif = (call.optional("timeInForce") or "GTC").upper()
    if tif not in TIME_IN_FORCE:
        raise errors.SimError(-1115, "Invalid timeInForce.")
    return tif


def new_order(call: Call) -> Any:
    spec = call.symbol()
    side = _side(call)
    kind = call.text("type").upper()
    if kind in CONDITIONAL_TYPES:
        raise errors.SimError(
            -4120,
            "Order type not supported for this endpoint. Please use the Algo Order API "
            "endpoints instead.",
        )
    if kind not in PLAIN_TYPES:
        raise errors.SimError(-1116, "Invalid orderType.")
    _position_side(call)
    qty = call.decimal("quantity")
    assert qty is not None
    check_qty(spec, qty, market=kind == "MARKET")
    price = ZERO
    tif = "GTC"
    if kind == "LIMIT":
        price = call.decimal("price") or ZERO
        check_price(spec, price)
        tif = _tif(call)
    elif call.optional("price") is not None:
        raise errors.SimError(-1106, "Parameter 'price' sent when not required.")
    order = call.state.place(
        NewOrder(
            spec=spec,
            side=side,
            type=kind,
            qty=qty,
            price=price,
            client_id=_client_id(call, "newClientOrderId"),
            reduce_only=call.flag("reduceOnly"),
            time_in_force=tif,
            fill_cap=call.fill_cap,
        )
    )
    ack = (call.optional("newOrderRespType") or "ACK").upper() != "RESULT"
    return order.wire(ack=ack)


def _find(call: Call, *, on_cancel: bool) -> SimOrder:
    spec = call.symbol()
    order_id = call.integer("orderId")
    cid = call.optional("origClientOrderId")
    if order_id is None and cid is None:
        raise errors.SimError(-1102, "Either orderId or origClientOrderId must be sent.")
    found = call.state.find_order(spec.id, order_id=order_id, client_id=cid)
    if found is not None and call.state.not_yet_visible(
        found.created_ms, call.now, conditional=False
    ):
        found = None
    if found is None:
        raise errors.unknown_order_on_cancel() if on_cancel else errors.order_not_found()
    return found


def get_order(call: Call) -> Any:
    return _find(call, on_cancel=False).wire()


def get_open_order(call: Call) -> Any:
    order = _find(call, on_cancel=False)
    if not order.is_open:
        raise errors.SimError(-2013, "Order does not exist.")
    return order.wire()


def cancel_order(call: Call) -> Any:
    with call.state.lock:
        return call.state.cancel(_find(call, on_cancel=True)).wire()


def open_orders(call: Call) -> Any:
    spec = call.spec(required=False)
    return [
        o.wire()
        for o in call.state.open_plain(spec.id if spec else None)
        if not call.state.not_yet_visible(o.created_ms, call.now, conditional=False)
    ]


def all_orders(call: Call) -> Any:
    spec = call.symbol()
    limit = min(call.integer("limit", 500) or 500, 1000)
    since_id = call.integer("orderId")
    start, end = call.integer("startTime"), call.integer("endTime")
    with call.state.synced():
        rows = [
            o
            for o in call.state.orders.values()
            if o.spec.id == spec.id
            and (since_id is None or o.order_id >= since_id)
            and (start is None or o.created_ms >= start)
            and (end is None or o.created_ms <= end)
        ]
        rows = rows[:limit] if since_id is not None else rows[-limit:]
        return [o.wire() for o in rows]


def cancel_all(call: Call) -> Any:
    spec = call.symbol()
    with call.state.lock:
        for order in call.state.open_plain(spec.id):
            call.state.cancel(order)
    return {"code": 200, "msg": "The operation of cancel all open order is done."}


def new_algo(call: Call) -> Any:
    spec = call.symbol()
    algo_type = call.text("algoType").upper()
    if algo_type != "CONDITIONAL":
        raise errors.SimError(-1116, "Invalid algoType.")
    side = _side(call)
    kind = call.text("type").upper()
    if kind not in ALGO_TYPES:
        raise errors.SimError(-1116, "Invalid orderType.")
    _position_side(call)
    close_position = call.flag("closePosition")
    reduce_only = call.flag("reduceOnly")
    if close_position and reduce_only:
        raise errors.SimError(-1106, "Parameter 'reduceOnly' sent when not required.")
    qty = call.decimal("quantity", required=not close_position) or ZERO
    if close_position and qty:
        raise errors.SimError(-1106, "Parameter 'quantity' sent when not required.")
    if not close_position:
        check_qty(spec, qty, market=kind.endswith("MARKET"))
    trigger = call.decimal("triggerPrice")
    assert trigger is not None
    check_price(spec, trigger, "triggerPrice")
    price = ZERO
    if not kind.endswith("MARKET"):
        price = call.decimal("price") or ZERO
        check_price(spec, price)
    algo = call.state.place_algo(
        NewOrder(
            spec=spec,
            side=side,
            type=kind,
            qty=qty,
            price=price,
            stop_price=trigger,
            client_id=_client_id(call, "clientAlgoId"),
            reduce_only=reduce_only,
            close_position=close_position,
            time_in_force=_tif(call),
        )
    )
    return algo.wire()


def _find_algo(call: Call, *, on_cancel: bool) -> SimAlgoOrder:
    spec = call.spec(required=False)
    algo_id = call.integer("algoId")
    cid = call.optional("clientAlgoId")
    if algo_id is None and cid is None:
        raise errors.SimError(-1102, "Either algoId or clientAlgoId must be sent.")
    found = call.state.find_algo(spec.id if spec else None, algo_id=algo_id, client_id=cid)
    if found is not None and call.state.not_yet_visible(
        found.created_ms, call.now, conditional=True
    ):
        found = None
    if found is None:
        raise errors.unknown_order_on_cancel() if on_cancel else errors.order_not_found()
    return found


def get_algo(call: Call) -> Any:
    return _find_algo(call, on_cancel=False).wire()


def cancel_algo(call: Call) -> Any:
    with call.state.lock:
        algo = call.state.cancel_algo(_find_algo(call, on_cancel=True))
    return {
        "algoId": algo.algo_id,
        "clientAlgoId": algo.client_algo_id,
        "code": "200",
        "msg": "success",
    }


def open_algos(call: Call) -> Any:
    spec = call.spec(required=False)
    return [
        a.wire()
        for a in call.state.open_algos(spec.id if spec else None)
        if not call.state.not_yet_visible(a.created_ms, call.now, conditional=True)
    ]


def all_algos(call: Call) -> Any:
    spec = call.symbol()
    limit = min(call.integer("limit", 500) or 500, 1000)
    with call.state.synced():
        rows = [a for a in call.state.algos.values() if a.spec.id == spec.id]
        return [a.wire() for a in rows[-limit:]]


def cancel_all_algos(call: Call) -> Any:
    spec = call.symbol()
    with call.state.lock:
        for algo in call.state.open_algos(spec.id):
            call.state.cancel_algo(algo)
    return {"code": 200, "msg": "The operation of cancel all open order is done."}


ROUTES: dict[tuple[str, str], tuple[Handler, int]] = {
    ("POST", "/fapi/v1/order"): (new_order, 0),
    ("GET", "/fapi/v1/order"): (get_order, 1),
    ("DELETE", "/fapi/v1/order"): (cancel_order, 1),
    ("GET", "/fapi/v1/openOrder"): (get_open_order, 1),
    ("GET", "/fapi/v1/openOrders"): (open_orders, 1),
    ("GET", "/fapi/v1/allOrders"): (all_orders, 5),
    ("DELETE", "/fapi/v1/allOpenOrders"): (cancel_all, 1),
    ("POST", "/fapi/v1/algoOrder"): (new_algo, 0),
    ("GET", "/fapi/v1/algoOrder"): (get_algo, 1),
    ("DELETE", "/fapi/v1/algoOrder"): (cancel_algo, 1),
    ("GET", "/fapi/v1/openAlgoOrders"): (open_algos, 1),
    ("GET", "/fapi/v1/allAlgoOrders"): (all_algos, 5),
    ("DELETE", "/fapi/v1/algoOpenOrders"): (cancel_all_algos, 1),
}
