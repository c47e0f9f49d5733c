"""The sim's account survives a restart, seen through real ccxt over HTTP: a clean stop,
a crash without the final save, a SIGKILLed sim-exchange process, and a market that
moved while the sim was down."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tomllib
import urllib.request
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import ccxt
import pytest
from support.daemon_harness import wait_until
from support.sim_ccxt import (
    SimBinanceUSDM,
    client,
    connect,
    mid_bar_clock,
    place_stop_loss,
    point_at,
    run_workers,
)
from support.sim_paths import limit_the_path_reaches

from trendbotd.adapters.clock import SystemClock
from trendbotd.core.clock import Clock, ManualClock
from trendbotd.sim import SimConfig, SimExchange
from trendbotd.sim.errors import SimStateError, SimStateIOError

SYMBOL = "BTC/USDT:USDT"
HOUR = 3_600_000

Factory = Callable[..., SimExchange]


@pytest.fixture
def clock() -> ManualClock:
    return mid_bar_clock()


@pytest.fixture
def new_sim(clock: ManualClock) -> Iterator[Factory]:
    """Start sims on a state file; every one still running is stopped at the end."""
    started: list[SimExchange] = []

    def factory(path: Path, *, sim_clock: Clock | None = None) -> SimExchange:
        cfg = SimConfig(symbols=(SYMBOL,), seed=3, clock=sim_clock or clock, state_file=path)
        sim = SimExchange(cfg).start()
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        sim.stop()


def open_a_book(ex: SimBinanceUSDM) -> None:
    """A position with a take-profit, a stop, a canceled order and some closed history."""
    ex.set_leverage(5, SYMBOL)
    ex.create_order(SYMBOL, "market", "buy", 0.02, None, {"clientOrderId": "entry"})
    ex.create_order(SYMBOL, "market", "sell", 0.005, None, {"clientOrderId": "trim"})
    ex.create_order(SYMBOL, "limit", "sell", 0.01, 33000, {"clientOrderId": "tp"})
    ex.create_order(SYMBOL, "limit", "buy", 0.01, 25000, {"clientOrderId": "dip"})
    ex.cancel_order(None, SYMBOL, {"clientOrderId": "dip"})
    place_stop_loss(ex, SYMBOL, 0.015, 28000, cid="sl")


CIDS = ("entry", "trim", "tp", "dip")


def seen(ex: SimBinanceUSDM) -> dict[str, Any]:
    """What the daemon learns about the account at startup, through ccxt."""
    return {
        "positions": [p["info"] for p in ex.fetch_positions([SYMBOL])],
        "balance": ex.fetch_balance()["info"],
        "open": [o["info"] for o in ex.fetch_open_orders(SYMBOL)],
        "open_algos": [o["info"] for o in ex.fetch_open_orders(SYMBOL, params={"trigger": True})],
        "by_client_id": {
            cid: ex.fetch_order(None, SYMBOL, {"clientOrderId": cid})["info"] for cid in CIDS
        },
        "stop": ex.fetch_order(None, SYMBOL, {"clientOrderId": "sl", "trigger": True})["info"],
        "history": [o["info"] for o in ex.fetch_orders(SYMBOL)],
        "trades": [t["info"] for t in ex.fetch_my_trades(SYMBOL)],
        "leverage": [p["leverage"] for p in ex.fapiPrivateV2GetPositionRisk({"symbol": "BTCUSDT"})],
    }


def priced_sim(new_sim: Factory, path: Path) -> tuple[SimExchange, SimBinanceUSDM]:
    """A sim on ``path`` with its price at 30000, and a ccxt client connected to it."""
    sim = new_sim(path)
    sim.account.set_price(SYMBOL, Decimal(30000))
    return sim, connect(sim)


def test_a_restarted_sim_shows_the_same_account(new_sim: Factory, tmp_path: Path) -> None:
    path = tmp_path / "paper.json"
    first, ex = priced_sim(new_sim, path)
    open_a_book(ex)
    before = seen(ex)
    assert before["positions"][0]["positionAmt"] == "0.015"
    assert before["leverage"] == ["5"]
    assert [o["clientOrderId"] for o in before["open"]] == ["tp"]
    assert before["by_client_id"]["dip"]["status"] == "CANCELED"
    first.stop()

    second = new_sim(path)
    ex2 = connect(second)
    assert seen(ex2) == before
    # it trades on from there: fresh ids, and the restored stop still protects the position
    order = ex2.create_order(SYMBOL, "market", "buy", 0.005, None, {"clientOrderId": "more"})
    assert int(order["id"]) > max(int(o["orderId"]) for o in before["history"])
    second.account.set_price(SYMBOL, Decimal(27000))
    stop = ex2.fetch_order(None, SYMBOL, {"clientOrderId": "sl", "trigger": True})
    assert stop["info"]["algoStatus"] == "FINISHED"
    remaining = ex2.fetch_positions([SYMBOL])
    assert remaining[0]["contracts"] == pytest.approx(0.005)  # 0.02 less the stop's 0.015


def test_a_crash_without_the_final_save_keeps_the_last_change(
    new_sim: Factory, tmp_path: Path
) -> None:
    path = tmp_path / "paper.json"
    _, ex = priced_sim(new_sim, path)
    open_a_book(ex)
    ex.create_order(SYMBOL, "limit", "buy", 0.01, 26000, {"clientOrderId": "last"})
    # the file as a kill -9 right after the answer would leave it (no stop(), no final save)
    crashed = tmp_path / "crashed.json"
    shutil.copyfile(path, crashed)
    expected = seen(ex)

    second = new_sim(crashed)
    ex2 = connect(second)
    last = ex2.fetch_order(None, SYMBOL, {"clientOrderId": "last"})
    assert (last["status"], last["price"]) == ("open", 26000)
    after = seen(ex2)
    assert after["open"] == expected["open"]
    assert after == expected


def test_concurrent_clients_leave_the_newest_state_on_disk(
    new_sim: Factory, tmp_path: Path
) -> None:
    path = tmp_path / "paper.json"
    sim = new_sim(path)
    sim.account.set_price(SYMBOL, Decimal(30000))

    def trade(worker: int) -> None:
        ex = connect(sim)
        for i in range(8):
            side = "buy" if (worker + i) % 2 == 0 else "sell"
            ex.create_order(
                SYMBOL,
                "limit",
                side,
                0.01,
                20000 if side == "buy" else 40000,
                {"clientOrderId": f"w{worker}-{i}"},
            )
            if i % 3 == 2:
                ex.cancel_order(None, SYMBOL, {"clientOrderId": f"w{worker}-{i}"})

    assert run_workers(trade, workers=4, timeout=30) == []
    copy = tmp_path / "copy.json"
    shutil.copyfile(path, copy)  # as a crash would leave it: no final save
    reloaded = new_sim(copy)
    assert reloaded.account.snapshot() == sim.account.snapshot()
    assert len(reloaded.account.open_orders()) == 4 * 6


def test_orders_fill_while_the_sim_is_down_as_on_a_real_exchange(
    new_sim: Factory, clock: ManualClock, tmp_path: Path
) -> None:
    path = tmp_path / "paper.json"
    first = new_sim(path)
    ex = connect(first)
    side, price = limit_the_path_reaches(first, clock.now_ms(), clock.now_ms() + 2 * HOUR)
    ex.create_order(SYMBOL, "limit", side, 0.01, float(price), {"clientOrderId": "rest"})
    assert ex.fetch_order(None, SYMBOL, {"clientOrderId": "rest"})["status"] == "open"
    first.stop()
    clock.advance(2 * HOUR)  # the market moves on while nothing runs

    second = new_sim(path)
    ex2 = connect(second)
    order = ex2.fetch_order(None, SYMBOL, {"clientOrderId": "rest"})
    assert (order["status"], order["average"]) == ("closed", float(price))
    position = ex2.fetch_positions([SYMBOL])[0]
    assert position["side"] == ("long" if side == "buy" else "short")


def test_a_corrupt_state_file_stops_the_start(new_sim: Factory, tmp_path: Path) -> None:
    path = tmp_path / "paper.json"
    path.write_text('{"format": "trendbotd-sim-state", "version": 1, "clock_ms": 1, "acc')
    with pytest.raises(SimStateError) as info:
        new_sim(path)
    assert str(path) in str(info.value)
    assert "not valid JSON" in str(info.value)
    assert path.read_text().endswith('"acc')  # left for a human to look at


def test_a_state_file_that_cannot_be_written_stops_the_start(
    new_sim: Factory, tmp_path: Path
) -> None:
    path = tmp_path / "no-such-dir" / "paper.json"
    with pytest.raises(SimStateIOError) as info:
        new_sim(path)
    assert str(path) in str(info.value)


# ----- the sim-exchange command -----


class Process:
    def __init__(self, tmp_path: Path, state_file: Path, *extra: str) -> None:
        creds = tmp_path / "creds.toml"
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "trendbotd.sim.main", "--port", "0", "--seed", "3"),
                *("--credentials-out", str(creds), "--state-file", str(state_file), *extra),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        lines = [self.proc.stdout.readline().split() for _ in range(2)]
        self.base_url = dict(line for line in lines if len(line) == 2)["base_url"]
        self.secrets = tomllib.loads(creds.read_text())

    def control(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            self.base_url + path, data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def server_time(self) -> int:
        with urllib.request.urlopen(self.base_url + "/fapi/v1/time", timeout=5) as response:
            return int(json.loads(response.read())["serverTime"])

    def exchange(self) -> SimBinanceUSDM:
        ex = SimBinanceUSDM(
            {
                "apiKey": self.secrets["api_key"],
                "secret": self.secrets["api_secret"],
                "enableRateLimit": False,
                "options": {"fetchCurrencies": False},
            }
        )
        ex.sim_base_url = self.base_url
        point_at(ex, self.base_url)
        ex.load_markets()
        return ex

    def end(self, sig: int) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        return self.proc.wait(10)


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    running: list[Process] = []
    yield running
    for p in running:
        p.end(signal.SIGKILL)


def test_sigkilled_sim_exchange_process_keeps_its_account(
    new_sim: Factory, processes: list[Process], tmp_path: Path
) -> None:
    path = tmp_path / "cli.json"
    proc = Process(tmp_path, path)
    processes.append(proc)
    proc.control("/sim/price", {"symbol": SYMBOL, "price": "30000"})
    ex = proc.exchange()
    ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "entry"})
    place_stop_loss(ex, SYMBOL, 0.01, 28000, cid="sl")
    assert proc.end(signal.SIGKILL) == -signal.SIGKILL

    sim = new_sim(path, sim_clock=SystemClock())  # the command's clock
    ex2 = client(sim)
    ex2.load_markets()
    position = ex2.fetch_positions([SYMBOL])[0]
    assert (position["contracts"], position["entryPrice"]) == (0.01, 30000)
    stop = ex2.fetch_order(None, SYMBOL, {"clientOrderId": "sl", "trigger": True})
    assert (stop["status"], stop["triggerPrice"]) == ("open", 28000)
    assert ex2.fetch_order(None, SYMBOL, {"clientOrderId": "entry"})["status"] == "closed"


def test_sim_exchange_resumes_a_fast_clock_instead_of_going_back(
    processes: list[Process], tmp_path: Path
) -> None:
    path = tmp_path / "fast.json"
    first = Process(tmp_path, path, "--speed", "1000")
    processes.append(first)
    started = first.server_time()
    # the fast clock has run ahead of real time: a minute of exchange time at least
    assert wait_until(lambda: first.server_time() >= started + 60_000, timeout=60)
    seen_before = first.server_time()
    assert first.end(signal.SIGTERM) == 0
    saved = SimExchange.saved_clock_ms(path)
    assert saved is not None
    assert saved >= seen_before

    second = Process(tmp_path, path, "--speed", "1000")
    processes.append(second)
    assert second.server_time() >= saved


def test_sim_exchange_refuses_a_corrupt_state_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("not json")
    result = subprocess.run(
        [sys.executable, "-m", "trendbotd.sim.main", "--state-file", str(path)],
        capture_output=True,
        check=False,
        text=True,
        timeout=30,
    )
    assert result.returncode == 65
    assert str(path) in result.stderr
    assert "Traceback" not in result.stderr
    assert path.read_text() == "not json"


def test_ccxt_sees_no_difference_between_runs_in_balance(new_sim: Factory, tmp_path: Path) -> None:
    path = tmp_path / "paper.json"
    first, ex = priced_sim(new_sim, path)
    ex.create_order(SYMBOL, "market", "sell", 0.01, None, {"clientOrderId": "short"})
    first.account.set_price(SYMBOL, Decimal(29000))
    ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"reduceOnly": True})
    total = ex.fetch_balance()["USDT"]["total"]
    first.stop()
    ex2 = connect(new_sim(path))
    assert ex2.fetch_balance()["USDT"]["total"] == total
    assert total == pytest.approx(10000 + 10 - 0.15 - 0.145)
    with pytest.raises(ccxt.OrderNotFound):
        ex2.fetch_order(None, SYMBOL, {"clientOrderId": "never-sent"})
