"""The order stack (executor and position manager) through the real ccxt adapter under
more of Binance's failure modes: a partial fill of a market entry (the rest expires), an
error after execution (-1001 / -1007: outcome unknown, asked by client id), an order that
queries show only seconds after it executed, and a clock offset beyond the bound.

Each case ends with the fault matrix's invariants, read from the exchange's own books:
no client id accepted twice, no doubled position, one entry per decided candle, every
position covered by its stop.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from order_invariants import Ledger, books_of, exposure_violations, protection_violations
from orders_sim_support import (
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
from support.daemon_config import live_config
from support.daemon_harness import clean_env, wait_until
from support.live_daemon import start_live
from support.sim_ccxt import client

from trendbotd.adapters.ccxt_exchange import CcxtExchange
from trendbotd.core.client_ids import make_client_id
from trendbotd.core.domain import (
    AccountMode,
    AccountSnapshot,
    ClockOffset,
    OrderRequest,
    OrderType,
    Side,
)
from trendbotd.core.records import Intent, IntentState, Purpose, TradingMode
from trendbotd.errors import ClockNotSyncedError
from trendbotd.journal.store import Journal, open_journal
from trendbotd.sim import Fault, SimConfig, SimExchange
from trendbotd.trading.order_flow import EntryOutcome
from trendbotd.trading.positions import PositionManager

ORDER = "/fapi/v1/order"
ALGO = "/fapi/v1/algoOrder"
ERRORS_AFTER: dict[str, dict[str, Any]] = {
    "-1001": {
        "binance_code": -1001,
        "http_status": 503,
        "msg": "Internal error; unable to process your request. Please try again.",
    },
    "-1007": {
        "binance_code": -1007,
        "http_status": 408,
        "msg": "Timeout waiting for response from backend server. Send status unknown; "
        "execution status unknown.",
    },
}
PHASES: dict[str, dict[str, Any]] = {
    "entry": {"method": "POST", "path": ORDER, "match": {"side": "BUY"}},
    "stop": {"method": "POST", "path": ALGO},
    "close": {"method": "POST", "path": ORDER, "match": {"side": "SELL"}},
    "stop_cancel": {"method": "DELETE", "path": ALGO},  # once flat, the stop is canceled
}


@pytest.fixture
def sim() -> Iterator[SimExchange]:
    with SimExchange(SimConfig(symbols=(SYMBOL,), seed=3)) as exchange:
        exchange.account.set_price(
            SYMBOL, PRICE
        )  # pinned: stops neither trigger nor fail by chance
        yield exchange


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with open_journal(journal_path(tmp_path)) as j:
        yield j


@pytest.fixture
def ex(sim: SimExchange) -> Iterator[CcxtExchange]:
    with measured_adapter(sim) as exchange:
        yield exchange


@pytest.fixture
def pm(ex: CcxtExchange, journal: Journal) -> PositionManager:
    return synced_manager(ex, journal)


def accepted_posts(sim: SimExchange, path: str, cid: str) -> int:
    key = "clientAlgoId" if path == ALGO else "newClientOrderId"
    return sum(
        1
        for r in sim.requests
        if (r.method, r.path) == ("POST", path) and r.accepted and r.params.get(key) == cid
    )


def assert_invariants(sim: SimExchange, journal: Journal) -> None:
    """The fault matrix's rules on the exchange's books (no allowance for in-flight)."""
    books = books_of(sim.state, clock_ms=sim.clock.now_ms())
    violations = Ledger(instance="itest").record(books, journal)
    violations += exposure_violations(books, journal)
    violations += protection_violations(books, journal, in_flight_from_ms=None)
    assert violations == []
    assert duplicates(sim) == {}
    assert unprotected(sim) == []


def open_with_lost_reply(sim: SimExchange, pm: PositionManager, *, hidden_ms: int) -> EntryOutcome:
    """Opens a long whose entry reply is lost and which the queries see ``hidden_ms`` late;
    whatever the executor concludes, the entry was sent once and did execute."""
    sim.faults.add(Fault(**PHASES["entry"], kind="drop_after"))
    sim.state.set_visibility_delay(hidden_ms, conditional=False)
    opened = pm.open_position(long_entry())
    assert accepted_posts(sim, ORDER, opened.entry.client_order_id) == 1
    assert sim.account.position(SYMBOL).amount == Decimal("0.010")
    return opened


def close_and_check(sim: SimExchange, pm: PositionManager, journal: Journal) -> None:
    closed = pm.close_position(SYMBOL, purpose=Purpose.EXIT, candle_time_ms=0, reason="test")
    assert closed.flat
    assert sim.account.position(SYMBOL).amount == 0
    assert sim.account.open_orders(SYMBOL) == []
    assert journal.account.expected_positions() == {}
    leftover = [
        i.describe() for i in journal.orders.non_final_intents() if i.state is not IntentState.ACKED
    ]
    assert leftover == []
    result = pm.sync(snapshot(pm.executor.exchange))  # type: ignore[arg-type]
    assert result.reconciliation.consistent, result.reconciliation.reduce_only_reason()
    assert journal.controls.mode().mode is TradingMode.NORMAL
    assert_invariants(sim, journal)


# ----- partial fill -----


def test_partial_fill_expected_position_is_the_fill_and_the_stop_covers_it(
    sim: SimExchange, pm: PositionManager, journal: Journal
) -> None:
    sim.faults.add(Fault(**PHASES["entry"], kind="partial_fill", fill_qty="0.004"))
    opened = pm.open_position(long_entry())
    assert opened.entry.filled == Decimal("0.004")
    assert opened.entry.state.is_final  # EXPIRED: the rest will never fill
    assert journal.account.expected_positions() == {SYMBOL: Decimal("0.004")}
    assert sim.account.position(SYMBOL).amount == Decimal("0.004")
    assert opened.protected
    # the stop went first, sized for the whole entry: reduce-only, it can never close
    # more than the 0.004 that filled, so it is kept as it is
    assert opened.stop is not None and opened.stop.amount == Decimal("0.010")
    [stop] = [a for a in sim.state.algos.values() if a.is_open]
    assert (stop.side, stop.qty, stop.reduce_only) == ("SELL", Decimal("0.010"), True)
    assert accepted_posts(sim, ORDER, opened.entry.client_order_id) == 1  # not topped up
    assert_invariants(sim, journal)
    close_and_check(sim, pm, journal)


def test_partial_fill_of_a_close_is_followed_by_another_close(
    sim: SimExchange, pm: PositionManager, journal: Journal
) -> None:
    assert pm.open_position(long_entry()).protected
    sim.faults.add(Fault(**PHASES["close"], kind="partial_fill", fill_qty="0.004"))
    closed = pm.close_position(SYMBOL, purpose=Purpose.EXIT, candle_time_ms=0, reason="test")
    assert closed.flat
    assert [i.filled for i in closed.orders] == [Decimal("0.004"), Decimal("0.006")]
    close_and_check(sim, pm, journal)


# ----- -1001 / -1007 after execution -----


@pytest.mark.parametrize("phase", list(PHASES))
@pytest.mark.parametrize("code", list(ERRORS_AFTER))
def test_error_after_execution_is_asked_by_id_never_resent(
    sim: SimExchange, pm: PositionManager, journal: Journal, code: str, phase: str
) -> None:
    sim.faults.add(Fault(**PHASES[phase], kind="error_after", **ERRORS_AFTER[code]))
    opened = pm.open_position(long_entry())
    assert opened.entry.state is IntentState.FILLED
    assert opened.protected
    assert sim.account.position(SYMBOL).amount == Decimal("0.010")
    assert accepted_posts(sim, ORDER, opened.entry.client_order_id) == 1
    assert opened.stop is not None
    assert accepted_posts(sim, ALGO, opened.stop.client_order_id) == 1
    assert_invariants(sim, journal)
    closed = pm.close_position(SYMBOL, purpose=Purpose.EXIT, candle_time_ms=0, reason="test")
    assert sim.faults.active() == []  # the fault really hit its phase
    assert [accepted_posts(sim, ORDER, i.client_order_id) for i in closed.orders] == [1]
    close_and_check(sim, pm, journal)


# ----- an order the queries show only later -----


def test_entry_visible_only_after_the_settle_time_is_not_sent_twice(
    sim: SimExchange, pm: PositionManager, journal: Journal
) -> None:
    # The reply is lost and the queries do not see the order for 1.5 s, between the
    # executor's settle time (0.6 s: "absent", contradicted by the position) and the end
    # of its doubt (2.4 s).
    opened = open_with_lost_reply(sim, pm, hidden_ms=1500)
    cid = opened.entry.client_order_id
    assert opened.entry.state is IntentState.FILLED
    assert opened.entry.attempts == 1
    assert opened.protected
    not_found = [
        r
        for r in sim.requests
        if r.method == "GET" and r.params.get("origClientOrderId") == cid and r.status == 400
    ]
    assert not_found  # it really was "absent" when first asked
    sim.state.set_visibility_delay(0, conditional=False)
    close_and_check(sim, pm, journal)


def test_entry_invisible_for_long_stays_unknown_and_blocks_nothing_from_being_doubled(
    sim: SimExchange, pm: PositionManager, journal: Journal
) -> None:
    opened = open_with_lost_reply(sim, pm, hidden_ms=60_000)
    cid = opened.entry.client_order_id
    assert opened.entry.state is IntentState.UNKNOWN  # not absent, not re-sent: unknown
    # the same decision again (a restart, a retry) asks, it does not send
    again = pm.open_position(long_entry())
    assert again.entry.state is IntentState.UNKNOWN
    assert accepted_posts(sim, ORDER, cid) == 1
    assert sim.account.position(SYMBOL).amount == Decimal("0.010")
    # the stop went before the entry and stays while the entry is in doubt
    assert [a.qty for a in sim.state.algos.values() if a.is_open] == [Decimal("0.010")]
    # once visible, the next sync adopts the fill; that stop already covers the position
    sim.state.set_visibility_delay(0, conditional=False)
    result = pm.sync(snapshot(pm.executor.exchange))  # type: ignore[arg-type]
    [entry] = [i for i in result.resolved if i.client_order_id == cid]
    assert entry.state is IntentState.FILLED
    assert journal.account.expected_positions() == {SYMBOL: Decimal("0.010")}
    assert result.stops_placed == ()
    assert [a.qty for a in sim.state.algos.values() if a.is_open] == [Decimal("0.010")]
    assert_invariants(sim, journal)
    close_and_check(sim, pm, journal)


def test_resting_stop_hidden_from_queries_leaves_the_position_protected(
    sim: SimExchange, pm: PositionManager, journal: Journal
) -> None:
    assert pm.open_position(long_entry()).protected
    sim.state.set_visibility_delay(60_000, conditional=True)
    result = pm.sync(snapshot(pm.executor.exchange))  # type: ignore[arg-type]
    sim.state.set_visibility_delay(0, conditional=True)
    # The listing does not show the stop and the query by id says "absent": the stop's
    # intent stays ACKED (never abandoned on a query), and the sync errs on the side of
    # protection with a second reduce-only stop under a new id (both can only reduce).
    assert [s.state for s in result.stops_placed] == [IntentState.ACKED]
    assert unprotected(sim) == []
    assert duplicates(sim) == {}
    assert_invariants(sim, journal)
    close_and_check(sim, pm, journal)  # flat: both stops are canceled


# ----- clock offset beyond the bound -----


def test_offset_beyond_the_bound_refuses_entries_but_sends_stops_and_closes(
    sim: SimExchange, ex: CcxtExchange
) -> None:
    sim.set_clock_skew_ms(20_000)
    offset = ex.measure_clock()
    assert isinstance(offset, ClockOffset) and offset.offset_ms > 19_000
    before = len(sim.requests)
    entry = OrderRequest(SYMBOL, Side.BUY, OrderType.MARKET, Decimal("0.010"), "fm-entry")
    with pytest.raises(ClockNotSyncedError, match="clock offset"):
        ex.create_order(entry)
    assert sim.requests[before:] == []  # refused before anything was sent
    sim.account.set_position(SYMBOL, Decimal("0.010"), PRICE)
    stop = OrderRequest(
        SYMBOL, Side.SELL, OrderType.STOP_MARKET, Decimal("0.010"), "fm-stop",
        stop_price=Decimal(45000), reduce_only=True,
    )  # fmt: skip
    ex.create_order(stop)
    close = OrderRequest(
        SYMBOL, Side.SELL, OrderType.MARKET, Decimal("0.010"), "fm-close", reduce_only=True
    )
    ex.create_order(close)
    assert sim.account.position(SYMBOL).amount == 0
    assert [r.accepted for r in sim.requests[before:] if r.method == "POST"] == [True, True]


def test_skew_met_by_an_entry_refuses_it_after_the_remeasure_nothing_executes(
    sim: SimExchange, pm: PositionManager, journal: Journal
) -> None:
    sim.set_clock_skew_ms(20_000)  # the adapter still signs with the old offset
    opened = pm.open_position(long_entry())
    assert opened.entry.state is IntentState.ABANDONED
    assert "clock offset" in (opened.entry.last_error or "")
    # the stop goes first and meets the one -1021; stamped with the re-measured offset it
    # is accepted (protective orders still go out), the entry is refused before sending
    # and its stop canceled
    assert [r for r in sim.requests if (r.method, r.path) == ("POST", ORDER)] == []
    posts = [r for r in sim.requests if (r.method, r.path) == ("POST", ALGO)]
    assert [r.status for r in posts] == [400, 200]
    assert [a for a in sim.state.algos.values() if a.is_open] == []
    assert sim.account.position(SYMBOL).amount == 0
    assert_invariants(sim, journal)


def test_skew_met_by_a_missing_stop_still_puts_it_back(
    sim: SimExchange, pm: PositionManager, journal: Journal
) -> None:
    assert pm.open_position(long_entry()).protected
    sim.set_clock_skew_ms(20_000)
    [algo] = [a for a in sim.state.algos.values() if a.is_open]
    sim.desk.cancel_algo(algo)  # gone from the exchange (canceled by hand, say)
    result = pm.sync(snapshot_skewed(pm))
    assert [s.state for s in result.stops_placed] == [IntentState.ACKED]
    assert_invariants(sim, journal)
    sim.set_clock_skew_ms(0)


def snapshot_skewed(pm: PositionManager) -> AccountSnapshot:
    """The account as the next tick reads it: its first read meets -1021 and re-measures
    (startup's sync would refuse the offset; a running tick reads on)."""
    exchange: CcxtExchange = pm.executor.exchange  # type: ignore[assignment]
    positions = tuple(exchange.fetch_positions([SYMBOL]))
    offset = exchange.clock_offset
    assert offset is not None and offset.offset_ms > 19_000
    return AccountSnapshot(
        taken_at_ms=exchange.server_now_ms(),
        clock=offset,
        mode=AccountMode.ONE_WAY,
        balance=exchange.fetch_balance(),
        positions=positions,
        open_orders=tuple(exchange.fetch_open_orders([SYMBOL])),
    )


# ----- the real daemon: a restart finds an entry the queries do not show yet -----


def test_daemon_restart_does_not_abandon_an_entry_that_is_visible_only_later(
    sim: SimExchange, tmp_path: Path
) -> None:
    """Killed after the entry left: the journal has it SENT, the exchange executed it, and
    its queries answer "does not exist" for 7 s. The startup resolver must not take it
    for never sent (abandoned, the engine free to enter again, the position unexplained
    and without its stop): the position says otherwise, so it asks again until the order
    shows, adopts the fill and puts the stop on before READY."""
    instance = "late"
    now = int(time.time() * 1000)
    candle = now - now % 3_600_000 - 3_600_000
    cid = make_client_id(
        instance=instance, symbol=SYMBOL, candle_time_ms=candle, seq=0, purpose=Purpose.ENTRY
    )
    (tmp_path / "state").mkdir()
    with open_journal(tmp_path / "state" / f"{instance}.db") as journal:
        journal.orders.add_intent(
            Intent(
                cid, SYMBOL, Side.BUY, OrderType.MARKET, Decimal("0.010"), Purpose.ENTRY,
                candle, 0, IntentState.SENT, now, now, protective_stop=Decimal(45000),
                attempts=1, sent_ms=now,
            )
        )  # fmt: skip
        journal.controls.set_decided_candle(SYMBOL, now + 86_400_000, now_ms=now)
    # Longer than the daemon takes to start and ask (settle 3 s), shorter than its doubt
    # (4 settle intervals: 12 s).
    sim.state.set_visibility_delay(7000, conditional=False)
    direct = client(sim)
    direct.load_markets()
    direct.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": cid})
    config = live_config(
        tmp_path,
        sim,
        name=instance,
        symbol=SYMBOL,
        exchange_extra="recv_window_ms = 2000",
        tick_interval_s=600,
    )
    log = tmp_path / "daemon.log"
    proc = start_live(config, cwd=tmp_path, log=log, env=clean_env())
    try:
        ready = wait_until(
            lambda: "daemon.ready" in log.read_text() or proc.poll() is not None, timeout=60
        )
        assert ready and proc.poll() is None, log.read_text()[-3000:]
        text = log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0, log.read_text()[-3000:]
    assert "ready: normal" in text, text[-3000:]  # not reduce-only on an unexplained long
    assert "order.absent_doubted" in text  # it was "absent" when first asked
    assert accepted_posts(sim, ORDER, cid) == 1  # never sent again
    assert sim.account.position(SYMBOL).amount == Decimal("0.010")
    with open_journal(tmp_path / "state" / f"{instance}.db") as journal:
        adopted = journal.orders.get_intent(cid)
        assert adopted is not None and adopted.state is IntentState.FILLED
        assert journal.account.expected_positions() == {SYMBOL: Decimal("0.010")}
        assert_invariants(sim, journal)
