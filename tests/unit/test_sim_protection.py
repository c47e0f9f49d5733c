"""The simulated exchange's own measure of unprotected time, and the stop rules it copies
from Binance: a reduce-only stop is accepted with no position and expires when it
triggers with nothing to reduce; a second closePosition stop on one side is -4130."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from trendbotd.core.clock import ManualClock
from trendbotd.core.domain import OrderStatus
from trendbotd.sim import SimConfig, SimExchange
from trendbotd.sim.codec import encode, restore
from trendbotd.sim.errors import SimError
from trendbotd.sim.market import ANCHOR_MS

SYMBOL = "BTC/USDT:USDT"
H = 3_600_000
T0 = ANCHOR_MS + 500 * H
Q = Decimal("0.010")


def make() -> tuple[SimExchange, ManualClock]:
    clock = ManualClock(T0 + 1)
    sim = SimExchange(SimConfig(symbols=(SYMBOL,), seed=11, clock=clock))
    sim.account.set_price(SYMBOL, Decimal(50000))
    return sim, clock


def stop(sim: SimExchange, trigger: int, *, side: str = "sell", cid: str = "sl", **kw: object):  # type: ignore[no-untyped-def]
    return sim.account.place_order(
        SYMBOL, side, "stop_market", Q, stop_price=Decimal(trigger), client_order_id=cid,
        reduce_only=True, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def report(sim: SimExchange) -> dict[str, object]:
    return sim.account.snapshot()["protection"].get(SYMBOL, {})  # type: ignore[no-any-return]


def test_stop_before_entry_leaves_no_unprotected_time() -> None:
    sim, clock = make()
    placed = stop(sim, 49000)  # accepted with no position
    assert placed.status is OrderStatus.OPEN
    clock.advance(5000)
    sim.account.place_order(SYMBOL, "buy", "market", Q, client_order_id="e")
    clock.advance(60_000)
    r = report(sim)
    assert (r["unprotected_ms"], r["gaps"]) == (0, 0)


def test_entry_before_stop_is_measured_until_the_stop_arrives() -> None:
    sim, clock = make()
    sim.account.place_order(SYMBOL, "buy", "market", Q, client_order_id="e")
    clock.advance(1200)
    assert report(sim)["open_since_ms"] == T0 + 1
    stop(sim, 49000)
    clock.advance(10_000)
    r = report(sim)
    assert (r["unprotected_ms"], r["max_gap_ms"], r["gaps"]) == (1200, 1200, 1)
    assert r["recent_gaps"] == [[T0 + 1, T0 + 1201]]


@pytest.mark.parametrize(("side", "counts"), [("sell", True), ("buy", False)])
def test_only_a_stop_on_the_closing_side_counts(side: str, counts: bool) -> None:
    sim, clock = make()
    sim.account.place_order(SYMBOL, "buy", "market", Q, client_order_id="e")
    stop(sim, 49000 if side == "sell" else 51000, side=side)
    clock.advance(500)
    assert (report(sim)["open_since_ms"] is None) is counts


def test_a_stop_smaller_than_the_position_leaves_it_unprotected() -> None:
    sim, clock = make()
    sim.account.place_order(SYMBOL, "buy", "market", Q * 2, client_order_id="e")
    stop(sim, 49000)
    clock.advance(700)
    assert report(sim)["unprotected_ms"] == 700


def test_reduce_only_stop_with_nothing_to_reduce_expires_when_it_triggers() -> None:
    sim, _ = make()
    stop(sim, 49000)
    sim.account.set_price(SYMBOL, Decimal(48000))
    assert sim.account.position(SYMBOL).amount == 0
    (algo,) = sim.state.algos.values()
    assert algo.status == "EXPIRED"


def test_second_close_position_stop_on_one_side_is_4130() -> None:
    sim, _ = make()
    sim.account.place_order(SYMBOL, "buy", "market", Q, client_order_id="e")
    sim.account.place_order(
        SYMBOL, "sell", "stop_market", Decimal(0), stop_price=Decimal(49000),
        client_order_id="c1", close_position=True,
    )  # fmt: skip
    with pytest.raises(SimError) as excinfo:
        sim.account.place_order(
            SYMBOL, "sell", "stop_market", Decimal(0), stop_price=Decimal(48000),
            client_order_id="c2", close_position=True,
        )  # fmt: skip
    assert excinfo.value.code == -4130
    # a reduce-only stop for an amount is not limited that way
    assert stop(sim, 48500, cid="r1").status is OrderStatus.OPEN


def test_the_figures_survive_the_state_file() -> None:
    sim, clock = make()
    sim.account.place_order(SYMBOL, "buy", "market", Q, client_order_id="e")
    clock.advance(300)
    stop(sim, 49000)
    with sim.state.lock:
        text = encode(sim.state, clock_ms=clock.now_ms(), market={})
    again, _ = make()
    restore(again.state, json.loads(text))
    assert report(again)["unprotected_ms"] == 300
