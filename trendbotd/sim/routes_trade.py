"""Signed trading endpoints: orders and algo (conditional) orders."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

from trendbotd.sim import errors
from trendbotd.sim.ledger import ZERO
from trendbotd.sim.orders import SimAlgoOrder, SimOrder
from trendbotd.sim.params import Call, check_price, check_qty
from trendbotd.sim.specs import SymbolSpec
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


def _price(call: Call, spec: SymbolSpec) -> Decimal:
    """The order's price, checked as Binance checks it (above 0, precision, tick)."""
    price = call.decimal("price") or ZERO
    check_price(spec, price)
    return price


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
        price = _price(call, spec)
        tif = _tif(call)
    elif call.optional("price") is not None:
        raise errors.SimError(-1106, "Parameter 'price' sent when not required.")
    order = call.desk.place(
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


# Binance's answer to both cancel-all calls, plain and algo
CANCEL_ALL_DONE = {"code": 200, "msg": "The operation of cancel all open order is done."}


def _ids(call: Call, id_name: str, client_id_name: str) -> tuple[int | None, str | None]:
    found_id, client_id = call.integer(id_name), call.optional(client_id_name)
    if found_id is None and client_id is None:
        raise errors.SimError(-1102, f"Either {id_name} or {client_id_name} must be sent.")
    return found_id, client_id


Shown = TypeVar("Shown", SimOrder, SimAlgoOrder)


def _shown(call: Call, found: Shown | None, *, on_cancel: bool) -> Shown:
    """The order a query found, unless the query side cannot see it yet (-2013 / -2011)."""
    conditional = isinstance(found, SimAlgoOrder)
    if found is None or call.state.not_yet_visible(
        found.created_ms, call.now, conditional=conditional
    ):
        raise errors.unknown_order_on_cancel() if on_cancel else errors.order_not_found()
    return found


def _all_shown(call: Call, items: list[Shown]) -> list[Any]:
    """Open orders as the query side shows them (younger ones may not be visible yet)."""
    return [
        item.wire()
        for item in items
        if not call.state.not_yet_visible(
            item.created_ms, call.now, conditional=isinstance(item, SimAlgoOrder)
        )
    ]


def _find(call: Call, *, on_cancel: bool) -> SimOrder:
    spec = call.symbol()
    order_id, cid = _ids(call, "orderId", "origClientOrderId")
    found = call.desk.find_order(spec.id, order_id=order_id, client_id=cid)
    return _shown(call, found, on_cancel=on_cancel)


def get_order(call: Call) -> Any:
    return _find(call, on_cancel=False).wire()


def get_open_order(call: Call) -> Any:
    order = _find(call, on_cancel=False)
    if not order.is_open:
        raise errors.SimError(-2013, "Order does not exist.")
    return order.wire()


def cancel_order(call: Call) -> Any:
    with call.state.lock:
        return call.desk.cancel(_find(call, on_cancel=True)).wire()


def open_orders(call: Call) -> Any:
    spec = call.spec(required=False)
    return _all_shown(call, call.desk.open_plain(spec.id if spec else None))


def all_orders(call: Call) -> Any:
    spec = call.symbol()
    limit = min(call.integer("limit", 500) or 500, 1000)
    since_id = call.integer("orderId")
    start, end = call.integer("startTime"), call.integer("endTime")
    with call.desk.synced():
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


def _cancel_each(
    call: Call, open_of: Callable[[str], list[Shown]], cancel: Callable[[Shown], Shown]
) -> Any:
    """Cancel every open order of the symbol, in one hold of the lock."""
    spec = call.symbol()
    with call.state.lock:
        for item in open_of(spec.id):
            cancel(item)
    return dict(CANCEL_ALL_DONE)


def cancel_all(call: Call) -> Any:
    return _cancel_each(call, call.desk.open_plain, call.desk.cancel)


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
    price = ZERO if kind.endswith("MARKET") else _price(call, spec)
    algo = call.desk.place_algo(
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
    algo_id, cid = _ids(call, "algoId", "clientAlgoId")
    found = call.desk.find_algo(spec.id if spec else None, algo_id=algo_id, client_id=cid)
    return _shown(call, found, on_cancel=on_cancel)


def get_algo(call: Call) -> Any:
    return _find_algo(call, on_cancel=False).wire()


def cancel_algo(call: Call) -> Any:
    with call.state.lock:
        algo = call.desk.cancel_algo(_find_algo(call, on_cancel=True))
    return {
        "algoId": algo.algo_id,
        "clientAlgoId": algo.client_algo_id,
        "code": "200",
        "msg": "success",
    }


def open_algos(call: Call) -> Any:
    spec = call.spec(required=False)
    return _all_shown(call, call.desk.open_algos(spec.id if spec else None))


def all_algos(call: Call) -> Any:
    spec = call.symbol()
    limit = min(call.integer("limit", 500) or 500, 1000)
    with call.desk.synced():
        rows = [a for a in call.state.algos.values() if a.spec.id == spec.id]
        return [a.wire() for a in rows[-limit:]]


def cancel_all_algos(call: Call) -> Any:
    return _cancel_each(call, call.desk.open_algos, call.desk.cancel_algo)
