"""``trendbotd halt`` and ``trendbotd flatten`` against the real paper daemon (its in-process
simulator, real ccxt over HTTP, the real journal), and with the daemon down: the command
takes the instance lock, closes through the simulator itself and lets go of the lock; a
daemon started meanwhile is refused (75), so two processes never drive the account."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from support.daemon_cli import journal_mode, run_cli
from support.daemon_harness import REAL_CMD, clean_env, write_config
from support.sim_ccxt import client
from test_resume_daemon import Daemon, daemons  # noqa: F401 - the fixture is used by name

from trendbotd.core.records import ModeState, Purpose, TradingMode
from trendbotd.journal.status import read_status
from trendbotd.service.pidlock import query_holder
from trendbotd.sim import SimConfig, SimExchange

SYMBOL = "BTC/USDT:USDT"

# A trending market at 3600x: the daemon enters (with its stop) within about 30 s.
TRADING = """
[paper]
speed = 3600
regime = "trend"
seed = 7
"""

# 12-hour candles and entries below the minimum size: nothing but the operator trades.
QUIET = """
[trading]
timeframe = "12h"

[risk]
risk_per_trade = 0.000001
"""


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(tmp_path, *args, env=clean_env(SUDO_USER="alice"), timeout=120)


# The target is 1 s and the tests print what they measure; the assertion only separates a
# wake from a missed one (the quiet daemon's next tick is 30 s away), with room for a busy
# 2-core machine that can hold a process back for seconds.
WAKE_BOUND_S = 8.0


def _acted_within(daemon: Daemon, needle: str, *, after: int, timeout: float = 20.0) -> float:
    """Seconds from now (the command has just exited) until the daemon logs ``needle``
    past offset ``after`` of its log (0 when it already had)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if needle in daemon.log.read_text(errors="replace")[after:]:
            return time.monotonic() - start
        time.sleep(0.01)
    raise AssertionError(f"{needle!r} not logged:\n{daemon.log.read_text()[-3000:]}")


@pytest.mark.slow  # waits for the trending market's first entry (about 30 s)
def test_halt_then_flatten_while_the_daemon_runs(tmp_path: Path, daemons: list[Daemon]) -> None:  # noqa: F811
    config = write_config(tmp_path, TRADING)
    journal = tmp_path / "state" / "itest.db"
    daemon = Daemon(tmp_path, config, clean_env())
    daemons.append(daemon)
    daemon.wait_log("daemon.ready", timeout=120)
    daemon.wait_log("protected=True", timeout=180)  # an entry filled, its stop placed

    mark = len(daemon.log.read_text(errors="replace"))
    halted = _cli(tmp_path, "halt", "--config", str(config), "--reason", "news at 14:00")
    assert halted.returncode == 0, halted.stderr
    latency = _acted_within(daemon, "operator.halted reason=halted by alice: news", after=mark)
    print(f"\nhalt: daemon logged it {latency * 1000:.0f} ms after the command exited")
    assert latency < WAKE_BOUND_S
    _acted_within(daemon, "operator.wake", after=mark)  # the command woke it
    assert "the daemon has been told" in halted.stdout
    assert journal_mode(journal) == ModeState(
        TradingMode.HALTED, "halted by alice: news at 14:00", journal_mode(journal).since_ms
    )
    # More candles are decided; none enters, and the position keeps its stop.
    text = daemon.log.read_text(errors="replace")
    decided = text[mark:].count("decision symbol=")
    deadline = time.monotonic() + 120
    while text[mark:].count("decision symbol=") < decided + 5:
        assert time.monotonic() < deadline, "no more decisions after the halt"
        time.sleep(0.1)
        text = daemon.log.read_text(errors="replace")
    assert "entry.done" not in text[mark:]
    report = read_status(journal)
    held = [p for p in report.positions if p.amount != 0]
    assert all(p.stop_price is not None for p in held), held  # whatever is held is protected

    mark = len(daemon.log.read_text(errors="replace"))
    flat = _cli(tmp_path, "flatten", "--all", "--config", str(config), "--reason", "done")
    assert flat.returncode == 0, flat.stderr
    latency = _acted_within(daemon, "operator.flatten_done id=", after=mark)
    print(f"flatten: done {latency * 1000:.0f} ms after the command exited")
    assert latency < WAKE_BOUND_S
    again = _cli(tmp_path, "flatten", "--all", "--config", str(config))  # duplicate: harmless
    assert again.returncode == 0, again.stderr
    daemon.wait_log("flat: 0 position(s) closed")
    # A sync after it: nothing held, no stop or entry left open, still halted.
    deadline = time.monotonic() + 120
    while True:
        report = read_status(journal)
        if report.last_sync_ms and report.last_sync_ms > report.mode.since_ms:
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert [p for p in report.positions if p.amount != 0] == []
    assert [i for i in report.open_intents if i.purpose in (Purpose.STOP, Purpose.ENTRY)] == []
    assert report.mode.mode is TradingMode.HALTED  # the halt's reason stays the record
    tail = daemon.log.read_text(errors="replace")[mark:]
    assert "entry.done" not in tail
    daemon.stop()
    resumed = _cli(tmp_path, "resume", "--config", str(config))
    assert resumed.returncode == 0, resumed.stderr
    assert journal_mode(journal).mode is TradingMode.NORMAL


def test_woken_at_once_with_no_tick_due(tmp_path: Path, daemons: list[Daemon]) -> None:  # noqa: F811
    """No tick for 30 s: halt and flatten are acted on within 1 s only because the
    command wakes the daemon. The position (opened by hand, so the daemon protects it
    with an emergency stop) is closed, its stop canceled once flat, and it stays halted."""
    config = write_config(tmp_path, QUIET)
    config.write_text(config.read_text().replace("tick_interval_s = 0.2", "tick_interval_s = 30"))
    journal = tmp_path / "state" / "itest.db"
    state_file = tmp_path / "state" / "itest.paper.json"
    state_file.parent.mkdir()
    _open_by_hand(state_file)
    daemon = Daemon(tmp_path, config, clean_env())
    daemons.append(daemon)
    daemon.wait_log("daemon.ready")
    deadline = time.monotonic() + 120
    while read_status(journal).last_tick_ms is None:  # the first tick is over
        assert time.monotonic() < deadline, daemon.log.read_text()[-3000:]
        time.sleep(0.05)
    stops = [i for i in read_status(journal).open_intents if i.purpose is Purpose.STOP]
    assert len(stops) == 1, stops  # the position is protected

    mark = len(daemon.log.read_text(errors="replace"))
    halted = _cli(tmp_path, "halt", "--config", str(config))
    assert halted.returncode == 0, halted.stderr
    latency = _acted_within(daemon, "operator.halted reason=halted by alice:", after=mark)
    print(f"\nhalt (no tick due): logged {latency * 1000:.0f} ms after the command exited")
    assert latency < WAKE_BOUND_S

    mark = len(daemon.log.read_text(errors="replace"))
    flat = _cli(tmp_path, "flatten", "--all", "--config", str(config), "--reason", "by hand")
    assert flat.returncode == 0, flat.stderr
    latency = _acted_within(daemon, "flat: 1 position(s) closed", after=mark)
    print(f"flatten (no tick due): flat {latency * 1000:.0f} ms after the command exited")
    assert latency < WAKE_BOUND_S
    tail = daemon.log.read_text(errors="replace")[mark:]
    # the close went out while the stop was still there; the stop went once flat
    closing, filled = tail.index("position.closing"), tail.index("order.filled")
    assert closing < filled < tail.index("reason=position is flat"), tail
    assert [i for i in read_status(journal).open_intents if i.purpose is Purpose.STOP] == []
    assert journal_mode(journal).mode is TradingMode.HALTED
    assert journal_mode(journal).reason == "halted by alice"  # the first halt stays the record
    status = _cli(tmp_path, "status", "--config", str(config))
    assert "mode:      halted - halted by alice" in status.stdout
    assert "flatten:   last one flat: 1 position(s) closed" in status.stdout
    daemon.stop()
    assert _exchange_side(state_file) == ([], [])


def _open_by_hand(state_file: Path) -> None:
    sim = SimExchange(SimConfig(symbols=(SYMBOL,), timeframe="12h", state_file=state_file))
    sim.start()
    try:
        exchange = client(sim)
        exchange.load_markets()
        exchange.create_order(SYMBOL, "market", "buy", 0.01, None, {})
    finally:
        sim.stop()


def _exchange_side(state_file: Path) -> tuple[list[str], list[str]]:
    """Open positions and open orders (stops included), as the simulator keeps them."""
    sim = SimExchange(SimConfig(symbols=(SYMBOL,), timeframe="12h", state_file=state_file))
    sim.start()
    try:
        positions = [f"{p.symbol} {p.amount}" for p in sim.account.positions()]
        orders = [f"{o.symbol} {o.side} {o.amount}" for o in sim.account.open_orders(SYMBOL)]
        return positions, orders
    finally:
        sim.stop()


def test_flatten_while_down_closes_itself_and_lets_go_of_the_lock(tmp_path: Path) -> None:
    config = write_config(tmp_path, QUIET)
    state_file = tmp_path / "state" / "itest.paper.json"
    state_file.parent.mkdir()
    _open_by_hand(state_file)
    done = _cli(tmp_path, "flatten", "--symbol", SYMBOL, "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert "done by this command (the daemon is not running): flat: 1 position(s)" in (done.stdout)
    assert "operator.flatten_done" in done.stderr
    assert not (tmp_path / "run" / "itest.pid").exists()  # released (and removed)
    mode = journal_mode(tmp_path / "state" / "itest.db")
    assert (mode.mode, mode.reason) == (
        TradingMode.HALTED,
        f"flatten {SYMBOL} requested by alice",
    )
    assert _exchange_side(state_file) == ([], [])
    again = _cli(tmp_path, "flatten", "--all", "--config", str(config))  # duplicate: harmless
    assert again.returncode == 0, again.stderr
    assert "flat: 0 position(s) closed" in again.stdout


def test_a_daemon_started_during_a_flatten_fails_fast(tmp_path: Path) -> None:
    # A slow exchange keeps the command's own sync going long enough to start a daemon.
    config = write_config(tmp_path, QUIET + "\n[paper]\nresponse_delay_ms = 300\n")
    state_file = tmp_path / "state" / "itest.paper.json"
    state_file.parent.mkdir()
    _open_by_hand(state_file)
    command = subprocess.Popen(
        [*REAL_CMD, "flatten", "--all", "--config", str(config)],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        lock = tmp_path / "run" / "itest.pid"
        while (holder := query_holder(lock) if lock.exists() else None) is None or (
            holder.pid != command.pid
        ):
            assert time.monotonic() < deadline, "the command never took the lock"
            assert command.poll() is None, command.communicate()
            time.sleep(0.01)
        started = time.monotonic()
        refused = _cli(tmp_path, "run", "--paper", "--config", str(config))
        took = time.monotonic() - started
        assert command.poll() is None, "the flatten ended before the daemon's start was tried"
        assert refused.returncode == 75, refused.stderr
        print(f"\ndaemon start during a flatten refused in {took * 1000:.0f} ms")
        assert took < 10  # fails fast, not after a sync of its own
        out, err = command.communicate(timeout=120)
        assert command.returncode == 0, err
        assert "flat: 1 position(s) closed" in out
    finally:
        if command.poll() is None:
            command.kill()
            command.wait()
    assert _exchange_side(state_file)[0] == []


def test_a_flatten_cut_short_is_done_by_the_daemon_at_its_start(
    tmp_path: Path,
    daemons: list[Daemon],  # noqa: F811
) -> None:
    config = write_config(tmp_path, QUIET)
    fast = config.read_text()
    slow = fast.replace("startup_timeout_s = 60", "startup_timeout_s = 5")
    config.write_text(slow + "\n[paper]\nresponse_delay_ms = 2000\n")
    state_file = tmp_path / "state" / "itest.paper.json"
    state_file.parent.mkdir()
    _open_by_hand(state_file)
    cut = _cli(tmp_path, "flatten", "--all", "--config", str(config), "--reason", "slow")
    assert cut.returncode == 69, cut.stderr  # the exchange did not answer in time
    assert "did not complete within service.startup_timeout_s=5 s" in cut.stderr
    assert not (tmp_path / "run" / "itest.pid").exists()  # the lock was let go
    status = _cli(tmp_path, "status", "--config", str(config))
    assert "flatten:   pending since " in status.stdout
    assert "(flatten all symbols requested by alice: slow)" in status.stdout
    assert _exchange_side(state_file)[0] != []  # still held

    config.write_text(fast)
    daemon = Daemon(tmp_path, config, clean_env())
    daemons.append(daemon)
    text = daemon.wait_log("daemon.ready")
    assert text.index("flat: 1 position(s) closed") < text.index("daemon.ready")
    assert journal_mode(tmp_path / "state" / "itest.db").mode is TradingMode.HALTED
    daemon.stop()
    assert _exchange_side(state_file) == ([], [])
