"""The checks of order_invariants.py (used by the kill/restart cycles and the soak) stay
quiet on a clean entry and find each kind of damage, on a real simulated exchange reached
through ccxt and a real journal."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from order_invariants import (
    Books,
    Ledger,
    StateFileReader,
    SyncRecords,
    books_of,
    exposure_violations,
    protection_report,
    protection_violations,
    unprotected_time_violations,
)
from orders_sim_support import (
    CANDLE,
    PRICE,
    SYMBOL,
    adapter,
    journal_path,
    long_entry,
    manager,
    snapshot,
)

from trendbotd.core.client_ids import make_client_id
from trendbotd.core.records import Purpose
from trendbotd.journal.store import Journal, open_journal
from trendbotd.sim import Fault, SimConfig, SimExchange
from trendbotd.sim.state import NewOrder

AMOUNT = Decimal("0.010")


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimExchange]:
    exchange = SimExchange(
        SimConfig(symbols=(SYMBOL,), seed=4, state_file=tmp_path / "sim.json")
    ).start()
    exchange.account.set_price(SYMBOL, PRICE)
    try:
        yield exchange
    finally:
        exchange.stop()


@pytest.fixture
def journal(sim: SimExchange, tmp_path: Path) -> Iterator[Journal]:
    """A journal after one clean long entry with its stop at 49000."""
    exchange = adapter(sim.base_url, sim.api_key, sim.api_secret)
    with open_journal(journal_path(tmp_path)) as j:
        pm = manager(exchange, j)
        pm.sync(snapshot(exchange))
        assert pm.open_position(long_entry()).protected
        pm.sync(snapshot(exchange))
        yield j
    exchange.close()


def books(sim: SimExchange) -> Books:
    return books_of(sim.state, clock_ms=sim.clock.now_ms())


def market_buy(sim: SimExchange, cid: str) -> None:
    """What a faulty bot would make the exchange do: one more order under ``cid``."""
    spec = sim.state.spec(SYMBOL)
    sim.desk.place(NewOrder(spec=spec, side="BUY", type="MARKET", qty=AMOUNT, client_id=cid))


def test_a_clean_entry_passes_and_reads_back_from_the_state_file(
    sim: SimExchange, journal: Journal, tmp_path: Path
) -> None:
    live = books(sim)
    assert live.positions == {SYMBOL: AMOUNT}
    ledger = Ledger("itest")
    assert ledger.record(live, journal) == []
    assert ledger.orders_seen == 2  # the entry and its stop
    assert exposure_violations(live, journal) == []
    assert protection_violations(live, journal, in_flight_from_ms=None) == []

    from_file = StateFileReader(tmp_path / "sim.json", symbols=(SYMBOL,)).read()
    assert from_file is not None
    assert from_file.positions == live.positions
    assert [o.client_id for o in from_file.orders] == [o.client_id for o in live.orders]
    assert from_file.covered(SYMBOL, AMOUNT) == AMOUNT
    assert from_file.protection[SYMBOL]["gaps"] == 0  # the meter is persisted too


def test_a_second_order_under_one_client_id_is_found(sim: SimExchange, journal: Journal) -> None:
    ledger = Ledger("itest")
    ledger.record(books(sim), journal)
    entry = next(o.client_id for o in sim.state.orders.values())
    market_buy(sim, entry)
    after = books(sim)
    found = ledger.record(after, journal)
    assert any(v.startswith(f"duplicate: {entry}") for v in found)
    assert any(v.startswith("entries: filled entry orders") for v in found)
    assert [v.split(":")[0] for v in exposure_violations(after, journal)] == ["exposure"]
    unprotected = protection_violations(after, journal, in_flight_from_ms=0)
    assert [v.split(",")[0] for v in unprotected] == [f"unprotected: {SYMBOL} position 0.020"]


def test_an_order_of_ours_without_an_intent_is_found(sim: SimExchange, journal: Journal) -> None:
    cid = make_client_id(
        instance="itest", symbol=SYMBOL, candle_time_ms=CANDLE + 3_600_000, seq=0,
        purpose=Purpose.ENTRY,
    )  # fmt: skip
    market_buy(sim, cid)
    found = Ledger("itest").record(books(sim), journal)
    assert found == [f"write-ahead: exchange order {cid} has no journal intent"]


def test_a_lost_position_is_found_unless_its_stop_fired(sim: SimExchange, journal: Journal) -> None:
    sim.account.set_position(SYMBOL, Decimal(0), PRICE)  # gone, no stop fired, no close sent
    assert [v.split(":")[0] for v in exposure_violations(books(sim), journal)] == ["exposure"]

    sim.account.set_position(SYMBOL, AMOUNT, PRICE)
    sim.account.set_price(SYMBOL, Decimal(48500))  # through the stop at 49000
    fired = books(sim)
    assert fired.positions == {}
    assert exposure_violations(fired, journal) == []  # the journal's next sync adopts it


def test_a_sync_that_leaves_a_position_without_a_stop_is_found(
    sim: SimExchange, journal: Journal
) -> None:
    records = SyncRecords(journal.path)
    assert records.unprotected() == []  # the entry's syncs all saw its stop
    for algo in list(sim.state.algos.values()):
        sim.desk.cancel_algo(algo)
    sim.account.set_position(SYMBOL, Decimal("0.5"), PRICE)  # not the bot's
    # and the exchange refuses the emergency stop sync places for it
    sim.faults.add(
        Fault(method="POST", path="/fapi/v1/algoOrder", binance_code=-1111, http_status=400)
    )
    exchange = adapter(sim.base_url, sim.api_key, sim.api_secret)
    manager(exchange, journal).sync(snapshot(exchange))
    exchange.close()
    found = records.unprotected()
    records.close()
    assert [v.split(" saw ")[1] for v in found] == [f"{SYMBOL} 0.500 without a stop"]


def test_the_exchange_measures_no_unprotected_time_when_the_stop_goes_first(
    sim: SimExchange, journal: Journal
) -> None:
    # the module fixture's journal already opened a position with its stop
    report = protection_report(sim.state)
    assert report[SYMBOL]["unprotected_ms"] == 0
    assert report[SYMBOL]["gaps"] == 0
    assert unprotected_time_violations(report, bound_ms=0) == []


def test_unprotected_time_is_measured_and_bounded(sim: SimExchange, journal: Journal) -> None:
    clock_before = sim.state.now_ms()
    for algo in list(sim.state.algos.values()):
        sim.desk.cancel_algo(algo)  # the position is bare from here
    report = protection_report(sim.state, now_ms=clock_before + 1500)
    assert report[SYMBOL]["open_since_ms"] is not None
    assert report[SYMBOL]["max_gap_ms"] >= 1400
    (violation,) = unprotected_time_violations(report, bound_ms=1000)
    assert violation.startswith(f"unprotected time: {SYMBOL} went ")
    # a stop ends the gap; the figure is kept, and shown in GET /sim/state
    sim.desk.place_algo(
        NewOrder(
            spec=sim.state.spec(SYMBOL),
            side="SELL",
            type="STOP_MARKET",
            qty=AMOUNT,
            client_id="hand-stop",
            stop_price=Decimal(40000),
            reduce_only=True,
        )
    )
    shown = sim.account.snapshot()["protection"][SYMBOL]
    assert shown["open_since_ms"] is None
    assert shown["gaps"] == 1
