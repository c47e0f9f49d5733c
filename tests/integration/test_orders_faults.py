"""The order stack through the real ccxt adapter to the simulated exchange, with faults
injected at entry, stop placement and close: never a duplicate order (accepted orders per
client id in the sim's request log), never an unprotected position."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from order_invariants import protection_report
from orders_sim_support import (
    CANDLE,
    PRICE,
    SYMBOL,
    duplicates,
    journal_path,
    long_entry,
    measured_adapter,
    snapshot,
    synced_manager,
    unprotected,
)
from support.daemon_harness import record_unprotected

from trendbotd.core.records import IntentState, Purpose, TradingMode
from trendbotd.journal.store import Journal, open_journal
from trendbotd.sim import Fault, SimConfig, SimExchange
from trendbotd.trading.positions import PositionManager

FAULTS: dict[str, dict[str, Any]] = {
    "drop_after_accept": {"kind": "drop_after"},
    "drop_before_accept": {"kind": "drop_before"},
    "timeout": {"kind": "timeout", "delay_ms": 1500},  # the client gives up after 1 s
    "503_execution_unknown": {
        "kind": "error",
        "binance_code": -1001,
        "http_status": 503,
        "msg": "Internal error; unable to process your request. Please try again.",
    },
    "503_gateway": {"kind": "http_status", "http_status": 503, "body": "Service Unavailable"},
    "-1021_timestamp": {
        "kind": "error",
        "binance_code": -1021,
        "http_status": 400,
        "msg": "Timestamp for this request is outside of the recvWindow.",
    },
    "-2022_reduce_only": {
        "kind": "error",
        "binance_code": -2022,
        "http_status": 400,
        "msg": "ReduceOnly Order is rejected.",
    },
    "-4116_duplicate_id": {
        "kind": "error",
        "binance_code": -4116,
        "http_status": 400,
        "msg": "ClientOrderId is duplicated.",
    },
    "429_rate_limit": {"kind": "rate_limit"},
}
PHASES: dict[str, dict[str, Any]] = {
    "entry": {"method": "POST", "path": "/fapi/v1/order", "match": {"side": "BUY"}},
    "stop": {"method": "POST", "path": "/fapi/v1/algoOrder"},
    "close": {"method": "POST", "path": "/fapi/v1/order", "match": {"side": "SELL"}},
}


# Cases that bare a position on purpose (by hand, behind the bot's back): the bound is
# the time the bot takes to protect it once it looks, not 0.
REPAIR_BOUND_MS = 1000
REPAIR_CASES = ("test_position_opened_by_hand",)


@pytest.fixture
def sim(request: pytest.FixtureRequest) -> Iterator[SimExchange]:
    exchange = SimExchange(SimConfig(symbols=(SYMBOL,), seed=3)).start()
    exchange.account.set_price(SYMBOL, PRICE)  # pinned: stops neither trigger nor fail by chance
    try:
        yield exchange
        report = protection_report(exchange.state)
        longest = record_unprotected(request.node.name, report)
        bound = REPAIR_BOUND_MS if request.node.name.startswith(REPAIR_CASES) else 0
        assert longest <= bound, report
    finally:
        exchange.stop()


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with open_journal(journal_path(tmp_path)) as j:
        yield j


@pytest.fixture
def pm(sim: SimExchange, journal: Journal) -> Iterator[PositionManager]:
    with measured_adapter(sim) as exchange:
        yield synced_manager(exchange, journal)


def assert_clean(sim: SimExchange, pm: PositionManager, journal: Journal) -> None:
    assert duplicates(sim) == {}
    assert unprotected(sim) == []
    leftover = [
        i.describe() for i in journal.orders.non_final_intents() if i.state is not IntentState.ACKED
    ]
    assert leftover == []
    result = pm.sync(snapshot(pm.executor.exchange))  # type: ignore[arg-type]
    assert result.reconciliation.consistent, result.reconciliation.reduce_only_reason()
    assert journal.controls.mode().mode is TradingMode.NORMAL


@pytest.mark.parametrize("phase", list(PHASES))
@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_matrix(
    sim: SimExchange, pm: PositionManager, journal: Journal, fault: str, phase: str
) -> None:
    sim.faults.add(Fault(**PHASES[phase], **FAULTS[fault]))

    opened = pm.open_position(long_entry())
    position = sim.account.position(SYMBOL).amount
    assert unprotected(sim) == []  # right after the entry: protected or flat
    if position != 0:
        assert opened.protected
        assert position == Decimal("0.010")
    assert duplicates(sim) == {}

    closed = pm.close_position(SYMBOL, purpose=Purpose.EXIT, candle_time_ms=0, reason="test")
    assert sim.faults.active() == []  # the fault really hit its phase
    assert closed.flat
    assert sim.account.position(SYMBOL).amount == 0
    assert sim.account.open_orders(SYMBOL) == []  # the stop is gone with the position
    assert journal.account.expected_positions() == {}
    assert_clean(sim, pm, journal)


@pytest.mark.parametrize(
    ("fault", "requests"),
    [
        ("drop_after_accept", 1),  # executed: found by its id, never sent again
        ("timeout", 1),
        ("drop_before_accept", 2),  # not executed: confirmed absent, re-sent with the same id
        ("503_execution_unknown", 2),  # the sim answers -1001 without executing
    ],
)
def test_outcome_unknown_entry_is_queried_before_any_resend(
    sim: SimExchange, pm: PositionManager, journal: Journal, fault: str, requests: int
) -> None:
    sim.faults.add(Fault(**PHASES["entry"], **FAULTS[fault]))
    opened = pm.open_position(long_entry())
    cid = opened.entry.client_order_id
    assert opened.entry.state is IntentState.FILLED
    assert opened.entry.attempts == requests
    posts = [r for r in sim.requests if r.method == "POST" and r.path == "/fapi/v1/order"]
    assert [r.params["newClientOrderId"] for r in posts] == [cid] * requests
    lookups = [
        r for r in sim.requests if r.method == "GET" and r.params.get("origClientOrderId") == cid
    ]
    assert lookups  # asked by client id before deciding anything
    assert sum(r.accepted for r in posts) == 1
    assert opened.protected


def test_stop_that_would_trigger_at_once_means_no_entry(
    sim: SimExchange, pm: PositionManager, journal: Journal
) -> None:
    opened = pm.open_position(long_entry(stop=PRICE + 100))  # -2021: the stop goes first
    assert opened.stop is not None
    assert opened.stop.refused_would_trigger
    assert opened.entry.state is IntentState.ABANDONED
    sent = [r for r in sim.requests if r.method == "POST" and r.path == "/fapi/v1/order"]
    assert sent == []  # the entry never left
    assert sim.account.position(SYMBOL).amount == 0
    assert_clean(sim, pm, journal)


def test_stop_refused_for_an_open_position_closes_it_at_market(
    sim: SimExchange, pm: PositionManager, journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    opened = pm.open_position(long_entry())
    assert opened.protected
    # the market falls through a trailing stop's new level before it is placed (through
    # the simulator's control API, as an outside test would move it)
    control = urllib.request.Request(
        f"{sim.base_url}/sim/price",
        data=json.dumps({"symbol": SYMBOL, "price": "49500"}).encode(),
        method="POST",
    )
    with urllib.request.urlopen(control, timeout=5) as reply:
        assert reply.status == 200
    with caplog.at_level("ERROR"):
        stop, close = pm.protect_or_close(
            SYMBOL,
            position=Decimal("0.010"),
            stop_price=Decimal(49600),
            candle_time_ms=CANDLE,
            parent=None,
        )
    assert stop.refused_would_trigger
    assert "-2021" in (stop.last_error or "")
    assert close is not None
    assert close.flat
    assert sim.account.position(SYMBOL).amount == 0
    assert f"stop.would_trigger symbol={SYMBOL} stop_price=49600 mark=49500" in caplog.text
    pm.sync(snapshot(pm.executor.exchange))  # type: ignore[arg-type]
    assert sim.account.open_orders(SYMBOL) == []  # the old stop went with the position
    assert_clean(sim, pm, journal)


def test_stop_triggered_while_away_is_adopted(
    sim: SimExchange, pm: PositionManager, journal: Journal
) -> None:
    opened = pm.open_position(long_entry())
    assert opened.protected
    sim.account.set_price(SYMBOL, Decimal(48500))  # crosses the stop at 49000
    assert sim.account.position(SYMBOL).amount == 0
    assert_clean(sim, pm, journal)
    assert journal.account.expected_positions() == {}


def test_position_opened_by_hand_goes_reduce_only_with_an_emergency_stop(
    sim: SimExchange, pm: PositionManager, journal: Journal
) -> None:
    sim.account.set_position(SYMBOL, Decimal("0.5"), PRICE)
    before = len(sim.requests)
    result = pm.sync(snapshot(pm.executor.exchange))  # type: ignore[arg-type]
    assert not result.reconciliation.consistent
    mode = journal.controls.mode()
    assert mode.mode is TradingMode.REDUCE_ONLY
    assert "opened outside the bot" in mode.reason
    new = [r for r in sim.requests[before:] if r.method != "GET"]
    # no synthetic corrective order: only a stop 5% below the mark
    assert [(r.path, r.params["side"], r.params["triggerPrice"]) for r in new] == [
        ("/fapi/v1/algoOrder", "SELL", "47500")
    ]
    assert unprotected(sim) == []
