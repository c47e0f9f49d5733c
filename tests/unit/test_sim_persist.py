"""The sim's state file without HTTP: round trip, a save on every change, corrupt files,
atomic writes, write ordering, bounded history and the cost of a save."""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from support.sim_paths import limit_the_path_reaches

from trendbotd.core.clock import ManualClock
from trendbotd.core.domain import OrderStatus
from trendbotd.exitcodes import ExitCode
from trendbotd.sim import SimConfig, SimExchange
from trendbotd.sim.codec import FORMAT, VERSION
from trendbotd.sim.errors import SimStateError, SimStateIOError
from trendbotd.sim.locking import StateLock
from trendbotd.sim.market import ANCHOR_MS, CsvCandles
from trendbotd.sim.persist import StateFile, StatePersister
from trendbotd.sim.state import MAX_KEPT_FILLS, MAX_KEPT_ORDERS

SYMBOL = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"
H = 3_600_000
T0 = ANCHOR_MS + 500 * H


def make(clock: ManualClock, *symbols: str) -> SimExchange:
    cfg = SimConfig(symbols=symbols or (SYMBOL,), seed=5, clock=clock, start_balance=Decimal(10**6))
    return SimExchange(cfg)


def persister(sim: SimExchange, path: Path) -> StatePersister:
    return StatePersister(
        sim.state,
        StateFile(path),
        clock_ms=sim.clock.now_ms,
        market={"seed": sim.config.seed},
        clock_interval_s=3600.0,
    )


def trade_a_little(sim: SimExchange) -> None:
    """Positions, fills, open and closed orders, algo orders, flags, leverage, a pin."""
    sim.account.set_price(SYMBOL, Decimal(30000))
    sim.state.set_leverage(SYMBOL, 7)
    sim.state.set_multi_assets(True)
    sim.account.place_order(SYMBOL, "buy", "market", Decimal("0.05"), client_order_id="entry")
    sim.account.set_price(SYMBOL, Decimal(31000))
    sim.account.place_order(SYMBOL, "sell", "market", Decimal("0.01"), client_order_id="trim")
    sim.account.place_order(
        SYMBOL, "buy", "limit", Decimal("0.01"), Decimal(25000), client_order_id="dip"
    )
    sim.account.place_order(
        SYMBOL, "buy", "limit", Decimal("0.01"), Decimal(24000), client_order_id="x"
    )
    sim.desk.cancel(sim.desk.find_order("BTCUSDT", order_id=None, client_id="x") or pytest.fail())
    sim.account.place_order(
        SYMBOL,
        "sell",
        "stop_market",
        Decimal("0.04"),
        stop_price=Decimal(28000),
        reduce_only=True,
        client_order_id="sl",
    )
    sim.account.place_order(
        SYMBOL, "sell", "stop_market", Decimal(0), stop_price=Decimal(27000), close_position=True
    )


def comparable(sim: SimExchange) -> dict[str, Any]:
    snap = sim.account.snapshot()
    snap["fills"] = [(f.trade_id, f.order_id, f.qty, f.price, f.fee) for f in sim.state.fills]
    snap["ids"] = (sim.state.ids.order, sim.state.ids.algo, sim.state.ids.client)
    return snap


def test_round_trip_restores_the_whole_account(tmp_path: Path) -> None:
    clock = ManualClock(T0 + 1)
    first = make(clock)
    trade_a_little(first)
    path = tmp_path / "sim.json"
    persister(first, path).save_now()
    second = make(clock)
    assert persister(second, path).load() is True
    assert comparable(second) == comparable(first)
    assert second.state.realized_pnl == first.state.realized_pnl != 0
    assert second.account.position(SYMBOL).leverage == 7
    assert second.account.order(SYMBOL, "sl", conditional=True).stop_price == Decimal(28000)
    doc = json.loads(path.read_text())
    assert (doc["format"], doc["version"]) == (FORMAT, VERSION)
    assert doc["clock_ms"] == T0 + 1
    assert doc["account"]["wallet"] == str(first.state.wallet)  # Decimal as an exact string
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["sim.json"]  # no temp file left
    # ids continue where they were, so a new order gets the same id on both
    a = first.account.place_order(SYMBOL, "sell", "market", Decimal("0.01"), client_order_id="n")
    b = second.account.place_order(SYMBOL, "sell", "market", Decimal("0.01"), client_order_id="n")
    assert a.exchange_order_id == b.exchange_order_id


def test_no_file_loads_nothing_and_saved_clock_is_none(tmp_path: Path) -> None:
    sim = make(ManualClock(T0))
    assert persister(sim, tmp_path / "none.json").load() is False
    assert SimExchange.saved_clock_ms(tmp_path / "none.json") is None


def test_every_kind_of_change_reaches_the_file_before_the_call_returns(tmp_path: Path) -> None:
    clock = ManualClock(T0 + 1)
    sim = make(clock)
    path = tmp_path / "sim.json"
    saver = persister(sim, path)
    saver.save_now()
    saver.attach()
    state = sim.state
    resting = limit_the_path_reaches(sim, T0 + 1, T0 + 1 + 2 * H)
    far = state.specs["BTCUSDT"].round_price(float(state.price(SYMBOL)) / 2)

    def cancel(cid: str) -> None:
        sim.desk.cancel(
            sim.desk.find_order("BTCUSDT", order_id=None, client_id=cid) or pytest.fail()
        )

    def cancel_algo(cid: str) -> None:
        found = sim.desk.find_algo("BTCUSDT", algo_id=None, client_id=cid) or pytest.fail()
        sim.desk.cancel_algo(found)

    changes: list[tuple[str, Callable[[], object]]] = [
        ("balance", lambda: sim.account.set_balance(Decimal(20000))),
        ("position", lambda: sim.account.set_position(SYMBOL, Decimal("0.02"), Decimal(29000))),
        ("leverage", lambda: sim.state.set_leverage(SYMBOL, 3)),
        ("multi", lambda: sim.state.set_multi_assets(True)),
        ("hedge", lambda: sim.state.set_hedge_mode(True)),
        ("one-way", lambda: sim.state.set_hedge_mode(False)),
        ("market", lambda: sim.account.place_order(SYMBOL, "buy", "market", Decimal("0.01"))),
        (
            "limit",
            lambda: sim.account.place_order(
                SYMBOL, "buy", "limit", Decimal("0.01"), far, client_order_id="far"
            ),
        ),
        ("cancel", lambda: cancel("far")),
        (
            "algo",
            lambda: sim.account.place_order(
                SYMBOL,
                "sell",
                "stop_market",
                Decimal("0.01"),
                stop_price=far,
                client_order_id="stop",
            ),
        ),
        ("cancel algo", lambda: cancel_algo("stop")),
        (
            "partial",
            lambda: sim.account.place_order(
                SYMBOL, "buy", "limit", Decimal("0.02"), far, client_order_id="p"
            ),
        ),
        ("fill", lambda: sim.account.fill_order(SYMBOL, "p", Decimal("0.01"), far)),
        ("pin", lambda: sim.account.set_price(SYMBOL, Decimal(12345))),
        ("unpin", lambda: sim.account.set_price(SYMBOL, None)),
        (
            "resting",
            lambda: sim.account.place_order(
                SYMBOL, resting[0], "limit", Decimal("0.01"), resting[1], client_order_id="rest"
            ),
        ),
        ("market moves (matching thread)", lambda: (clock.advance(2 * H), sim.matching.sync())),
    ]
    before = path.read_bytes()
    for name, change in changes:
        change()
        after = path.read_bytes()
        assert after != before, f"{name} was not saved"
        before = after
    # and the file holds exactly what the live account holds
    again = make(clock)
    persister(again, path).load()
    assert comparable(again) == comparable(sim)
    assert again.account.order(SYMBOL, "rest").status is OrderStatus.FILLED
    saves = saver.stats.saves
    sim.account.positions()
    sim.account.open_orders()
    sim.account.balance()
    assert saver.stats.saves == saves  # reads write nothing


def test_a_csv_replay_keeps_its_time_shift_across_a_restart(tmp_path: Path) -> None:
    csv = tmp_path / "candles.csv"
    rows = [f"{ANCHOR_MS + i * H},{100 + i},{101 + i},{99 + i},{100.5 + i},10" for i in range(60)]
    csv.write_text("\n".join(rows) + "\n")
    start = ANCHOR_MS + 4000 * H  # outside the data: replayed from the start instant

    def replay(at: int) -> SimExchange:
        cfg = SimConfig(symbols=(SYMBOL,), clock=ManualClock(at), data_csv=csv, csv_warmup_bars=10)
        return SimExchange(cfg)

    first = replay(start)
    path = tmp_path / "sim.json"
    persister(first, path).save_now()
    later = replay(start + 7 * H)  # restarted later: on its own it would shift differently
    source, original = later.state.tapes["BTCUSDT"].source, first.state.tapes["BTCUSDT"].source
    assert isinstance(source, CsvCandles)
    assert isinstance(original, CsvCandles)
    unshifted = source.shift_bars
    persister(later, path).load()
    assert source.shift_bars == original.shift_bars != unshifted
    assert later.state.price(SYMBOL, start) == first.state.price(SYMBOL, start)


def test_clock_alone_is_refreshed_when_due(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    sim = make(clock)
    path = tmp_path / "sim.json"
    saver = StatePersister(
        sim.state, StateFile(path), clock_ms=clock.now_ms, market={}, clock_interval_s=0.0
    )
    saver.save_now()
    saver.attach()
    clock.advance(5 * H)
    sim.account.positions()  # any release of the lock once the interval has passed
    assert SimExchange.saved_clock_ms(path) == T0 + 5 * H
    saves = saver.stats.saves
    sim.account.positions()
    assert saver.stats.saves == saves  # the clock did not move: nothing to write


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "not valid JSON"),
        (b'{"format": "trendbotd-sim-state", "vers', "not valid JSON"),
        (b"\xff\xfe garbage", "not valid JSON"),
        (b"[1, 2]", "not a trendbotd-sim-state document"),
        (b'{"format": "other"}', "not a trendbotd-sim-state document"),
        (b'{"format": "trendbotd-sim-state", "version": 99, "clock_ms": 1}', "newer"),
        (b'{"format": "trendbotd-sim-state", "version": "1", "clock_ms": 1}', "version"),
        (b'{"format": "trendbotd-sim-state", "version": 1}', "clock_ms"),
    ],
)
def test_unreadable_files_raise_naming_the_file_and_are_left_alone(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    path = tmp_path / "sim.json"
    path.write_bytes(content)
    sim = make(ManualClock(T0))
    with pytest.raises(SimStateError) as info:
        persister(sim, path).load()
    assert str(path) in str(info.value)
    assert problem in str(info.value)
    assert info.value.exit_code == ExitCode.DATA_ERROR
    with pytest.raises(SimStateError):
        SimExchange.saved_clock_ms(path)
    assert path.read_bytes() == content  # never reset


def _saved_document(tmp_path: Path) -> tuple[dict[str, Any], SimExchange]:
    clock = ManualClock(T0 + 1)
    sim = make(clock)
    trade_a_little(sim)
    path = tmp_path / "good.json"
    persister(sim, path).save_now()
    return json.loads(path.read_text()), sim


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda d: d["orders"][0].update(qty="lots"), "orders[0].qty: not a decimal"),
        (lambda d: d["orders"][1].update(qty=0.01), "orders[1].qty: expected a decimal string"),
        (lambda d: d["orders"][0].pop("order_id"), "orders[0]: missing 'order_id'"),
        (lambda d: d["algo_orders"][0].update(algo_id="7"), "algo_orders[0].algo_id"),
        (lambda d: d["account"].update(wallet="NaN"), "account.wallet: not a finite decimal"),
        (lambda d: d.pop("fills"), "'fills'"),
        (lambda d: d["symbols"]["BTCUSDT"].update(synced_ms=None), "synced_ms"),
        (lambda d: d["account"].update(dual_side="no"), "account.dual_side"),
    ],
)
def test_damaged_records_raise_and_leave_the_account_untouched(
    tmp_path: Path, damage: Callable[[dict[str, Any]], object], problem: str
) -> None:
    doc, _ = _saved_document(tmp_path)
    damage(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    fresh = make(ManualClock(T0 + 1))
    before = comparable(fresh)
    with pytest.raises(SimStateError) as info:
        persister(fresh, path).load()
    assert problem in str(info.value)
    assert str(path) in str(info.value)
    assert comparable(fresh) == before  # all or nothing


def test_positions_on_symbols_no_longer_configured_refuse_to_load(tmp_path: Path) -> None:
    clock = ManualClock(T0 + 1)
    both = make(clock, SYMBOL, ETH)
    both.account.set_position(ETH, Decimal("0.5"), Decimal(2000))
    path = tmp_path / "sim.json"
    persister(both, path).save_now()
    with pytest.raises(SimStateError, match="ETHUSDT position"):
        persister(make(clock, SYMBOL), path).load()
    # closed history alone on a dropped symbol is not worth refusing to start
    both.account.set_position(ETH, Decimal(0), Decimal(0))
    both.account.set_price(ETH, Decimal(2000))
    both.account.place_order(ETH, "buy", "market", Decimal("0.1"))
    both.account.place_order(ETH, "sell", "market", Decimal("0.1"))
    both.account.set_position(SYMBOL, Decimal("0.01"), Decimal(30000))
    persister(both, path).save_now()
    only_btc = make(clock, SYMBOL)
    persister(only_btc, path).load()
    assert only_btc.state.orders == {}
    assert only_btc.account.position(SYMBOL).amount == Decimal("0.01")
    # an open order there is refused
    both.account.place_order(ETH, "buy", "limit", Decimal("0.1"), Decimal(1000))
    persister(both, path).save_now()
    with pytest.raises(SimStateError, match="open order"):
        persister(make(clock, SYMBOL), path).load()


def test_a_failed_write_raises_and_the_next_change_saves_both(tmp_path: Path) -> None:
    clock = ManualClock(T0 + 1)
    sim = make(clock)
    path = tmp_path / "gone" / "sim.json"
    saver = persister(sim, path)
    saver.attach()
    with pytest.raises(SimStateIOError) as info:
        sim.account.set_balance(Decimal(123))
    assert info.value.exit_code == ExitCode.IO_ERROR
    assert str(path) in str(info.value)
    path.parent.mkdir()
    sim.state.set_leverage(SYMBOL, 9)
    doc = json.loads(path.read_text())
    assert doc["account"]["wallet"] == "123"
    assert doc["symbols"]["BTCUSDT"]["position"]["leverage"] == 9


def test_an_older_snapshot_never_overwrites_a_newer_one(tmp_path: Path) -> None:
    clock = ManualClock(T0 + 1)
    sim = make(clock)
    path = tmp_path / "sim.json"
    saver = persister(sim, path)
    sim.account.set_balance(Decimal(1))
    with sim.state.lock:
        older = saver._snapshot()
    sim.account.set_balance(Decimal(2))
    with sim.state.lock:
        newer = saver._snapshot()
    newer()
    older()  # a slow writer finishing late
    assert json.loads(path.read_text())["account"]["wallet"] == "2"


def test_state_lock_hook_runs_at_the_outermost_release_and_writes_after_it() -> None:
    lock = StateLock()
    events: list[str] = []
    other_got_in = threading.Event()

    def after() -> None:
        # the lock is free while the slow part runs: another thread can take it
        def take() -> None:
            with lock:
                other_got_in.set()

        t = threading.Thread(target=take)
        t.start()
        t.join(5)
        events.append("after")

    def hook() -> Callable[[], None] | None:
        events.append("hook")
        return after if len(events) == 1 else None

    lock.on_release = hook
    with lock:
        with lock:
            pass
        assert events == []  # an inner release is not the end
    assert events == ["hook", "hook", "after"]  # the other thread's release ran the hook
    assert other_got_in.is_set()


def test_history_stays_bounded_and_trade_ids_keep_counting(tmp_path: Path) -> None:
    clock = ManualClock(T0 + 1)
    sim = make(clock)
    sim.account.set_price(SYMBOL, Decimal(30000))
    sim.account.place_order(
        SYMBOL, "buy", "limit", Decimal("0.01"), Decimal(20000), client_order_id="old"
    )
    for i in range(MAX_KEPT_ORDERS + 150):
        sim.account.place_order(SYMBOL, "buy" if i % 2 else "sell", "market", Decimal("0.01"))
    assert len(sim.state.orders) <= MAX_KEPT_ORDERS
    assert len(sim.state.fills) <= MAX_KEPT_FILLS
    assert sim.account.order(SYMBOL, "old").status.value == "open"  # open orders are never dropped
    assert sim.state.fills[-1].trade_id == MAX_KEPT_ORDERS + 150
    path = tmp_path / "sim.json"
    persister(sim, path).save_now()
    doc = json.loads(path.read_text())
    assert len(doc["orders"]) == len(sim.state.orders)
    assert path.stat().st_size < 1_000_000


def test_save_cost_with_a_hundred_orders_in_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = ManualClock(T0 + 1)
    sim = make(clock)
    sim.account.set_price(SYMBOL, Decimal(30000))
    for i in range(100):
        sim.account.place_order(SYMBOL, "buy" if i % 2 else "sell", "market", Decimal("0.01"))
    saver = persister(sim, tmp_path / "sim.json")
    saver.save_now()
    saver.attach()
    first = saver.stats.saves
    for i in range(40):
        sim.account.place_order(
            SYMBOL, "buy", "limit", Decimal("0.01"), Decimal(20000), client_order_id=f"c{i}"
        )
    stats = saver.stats
    assert stats.saves - first == 40  # one save per accepted order
    with capsys.disabled():
        print(
            f"\nsim state save: {stats.ms_per_save:.2f} ms per save "
            f"({1000 * stats.snapshot_s / stats.saves:.2f} ms of it under the lock), "
            f"{stats.last_bytes} bytes, {len(sim.state.orders)} orders in history"
        )
    assert stats.ms_per_save < 250  # generous: about 1-3 ms on an idle machine


def test_fsync_writes_go_through_a_temp_file_in_the_same_directory(tmp_path: Path) -> None:
    path = tmp_path / "sim.json"
    path.write_text("old")
    seen: list[str] = []
    real_replace = Path.replace

    def spy(self: Path, target: str | os.PathLike[str]) -> Path:
        seen.append(self.name)
        assert self.parent == path.parent
        assert self.read_text() == '{"x":1}'  # complete before it takes the name
        return real_replace(self, target)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Path, "replace", spy)
        StateFile(path).write('{"x":1}')
    assert seen == [".sim.json.tmp"]
    assert path.read_text() == '{"x":1}'


class HeldFile(StateFile):
    """A state file whose writes wait until the test lets them through."""

    def __init__(self, path: Path, events: list[str]) -> None:
        super().__init__(path)
        self.events = events
        self.entered = threading.Event()
        self.go = threading.Event()

    def write(self, text: str) -> int:
        self.entered.set()
        assert self.go.wait(30)
        size = super().write(text)
        self.events.append("written")
        return size


def test_a_reader_is_answered_only_once_the_change_it_saw_is_on_disk(tmp_path: Path) -> None:
    """Another thread's change (the matching thread's stop trigger) seen by a request that
    changes nothing: that answer waits for the change's write, so a kill of the process
    right after it cannot roll back on disk what the client was told."""
    clock = ManualClock(T0 + 1)
    sim = make(clock)
    events: list[str] = []
    file = HeldFile(tmp_path / "sim.json", events)
    saver = StatePersister(
        sim.state, file, clock_ms=clock.now_ms, market={}, clock_interval_s=3600.0
    )
    saver.attach()
    changer = threading.Thread(target=sim.account.set_balance, args=(Decimal(7),))
    changer.start()
    assert file.entered.wait(30)  # snapshot taken, its write held

    def read() -> None:
        with sim.state.lock:
            wallet = sim.state.wallet
        events.append(f"answered {wallet}")

    reader = threading.Thread(target=read)
    reader.start()
    reader.join(timeout=0.5)  # time enough for an answer that does not wait
    file.go.set()
    changer.join(30)
    reader.join(30)
    assert events == ["written", "answered 7"]
    assert json.loads(file.path.read_text())["account"]["wallet"] == "7"
