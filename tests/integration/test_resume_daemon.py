"""A position opened by hand while the real paper daemon was down: it comes up READY in
reduce-only mode and says why (log, STATUS=, ``trendbotd status``). ``trendbotd resume``
while the position is still there warns, and the next sync goes back to reduce-only;
once the position is closed by hand, reduce-only stays until ``trendbotd resume``, which
works on the running daemon's journal and lasts across a restart."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.daemon_cli import journal_mode, run_cli
from support.daemon_harness import REAL_CMD, Notification, NotifyListener, clean_env, write_config
from support.sim_ccxt import client

from trendbotd.core.records import TradingMode
from trendbotd.sim import SimConfig, SimExchange

SYMBOL = "BTC/USDT:USDT"
HAND = f"{SYMBOL}: position 0.010 opened outside the bot (the journal expects none)"

# 12-hour candles: the one decision per candle is taken by the first run, so the restarted
# daemons only sync (no strategy exit of the hand-made position muddles the test), and
# entries are sized below the minimum quantity: the test is about modes, not trading.
EXTRA = """
[trading]
timeframe = "12h"

[risk]
risk_per_trade = 0.000001
"""


class Daemon:
    def __init__(self, tmp_path: Path, config: Path, env: dict[str, str]) -> None:
        self.log = tmp_path / f"daemon-{time.monotonic_ns()}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*REAL_CMD, "run", "--paper", "--config", str(config)],
                cwd=tmp_path,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait_log(self, needle: str, *, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log.read_text(errors="replace")
            if needle in text:
                return text
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{needle!r} not logged:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=30) == 0, self.log.read_text()[-3000:]


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(timeout=60)


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(tmp_path, *args, env=clean_env(), timeout=60)


def _trade_by_hand(state_file: Path, side: str, params: dict[str, object]) -> None:
    """What someone does in the exchange's web UI while the daemon is down."""
    sim = SimExchange(SimConfig(symbols=(SYMBOL,), timeframe="12h", state_file=state_file))
    sim.start()
    try:
        exchange = client(sim)
        exchange.load_markets()
        exchange.create_order(SYMBOL, "market", side, 0.01, None, params)
    finally:
        sim.stop()


def test_hand_opened_position_reduce_only_then_resume(
    tmp_path: Path, notify_listener: NotifyListener, daemons: list[Daemon]
) -> None:
    config = write_config(tmp_path, EXTRA)
    journal = tmp_path / "state" / "itest.db"
    state_file = tmp_path / "state" / "itest.paper.json"

    def start() -> tuple[Daemon, str]:
        """A daemon up to READY=1, and the STATUS= it sent with it."""
        after = len(notify_listener.messages())
        daemon = Daemon(tmp_path, config, clean_env(NOTIFY_SOCKET=notify_listener.path))
        daemons.append(daemon)
        _, ready = notify_listener.wait_key("READY", "1", timeout=60, after=after)
        daemon.wait_log("daemon.ready")
        return daemon, ready.fields["STATUS"]

    first, ready = start()
    first.wait_log(f"decision symbol={SYMBOL}")
    first.stop()
    assert ready.startswith("ready: normal")

    _trade_by_hand(state_file, "buy", {})

    second, ready = start()
    assert ready.startswith("ready: reduce_only"), ready
    reason = journal_mode(journal).reason
    assert reason.startswith(HAND)  # and that no stop protects it
    assert f"mode.reduce_only reason={reason}" in second.log.read_text()

    def tick_says_why(m: Notification) -> bool:
        text = m.fields.get("STATUS", "")
        return text.startswith("reduce_only | equity") and f"({reason})" in text

    notify_listener.wait_for(tick_says_why)  # every tick's STATUS= carries the mode and why
    status = _cli(tmp_path, "status", "--config", str(config))
    assert status.returncode == 0, status.stderr
    assert f"state: running, PID {second.proc.pid} (" in status.stdout
    assert f"mode:      reduce_only - {reason}" in status.stdout
    assert f"  {SYMBOL} 0.010 @ " in status.stdout

    # Resumed while the position is still there: it says that will not last ...
    early = _cli(tmp_path, "resume", "--config", str(config))
    assert early.returncode == 0, early.stderr
    assert early.stdout == (
        f"trendbotd: itest: resumed: reduce_only -> normal (was reduce_only: {reason}); "
        "takes effect at the daemon's next tick\n"
    )
    assert f"still saw {SYMBOL} 0.010 on the exchange where the journal expects 0" in early.stderr
    assert "the daemon goes back to reduce-only at its next sync" in early.stderr
    # ... and it does not: the running daemon's next sync finds the same difference
    deadline = time.monotonic() + 20
    while journal_mode(journal).mode is not TradingMode.REDUCE_ONLY:
        assert time.monotonic() < deadline, "the running daemon never went back to reduce-only"
        time.sleep(0.05)
    assert journal_mode(journal).reason == reason
    second.stop()
    # ... and neither does a restart.
    third, ready = start()
    assert ready.startswith("ready: reduce_only"), ready
    assert journal_mode(journal).reason == reason
    third.stop()

    # Closed by hand: consistent again, but reduce-only stays until a human says so.
    _trade_by_hand(state_file, "sell", {"reduceOnly": True})
    fourth, ready = start()
    assert ready.startswith("ready: reduce_only, equity"), ready
    assert ready.endswith(", 0 open position(s)")

    # ... and what it was entered for no longer holds: STATUS= and status say so rather
    # than repeat it as if it were still true.
    def says_it_no_longer_holds(m: Notification) -> bool:
        text = m.fields.get("STATUS", "")
        return text.startswith("reduce_only | equity ") and text.endswith(
            f" (no longer holds: {reason}; trendbotd resume to trade again) | {SYMBOL} flat"
        )

    notify_listener.wait_for(says_it_no_longer_holds, timeout=30)
    fourth.wait_log(f"mode.reason_resolved mode=reduce_only was={reason}: no longer holds")
    status = _cli(tmp_path, "status", "--config", str(config))
    assert "mode:      reduce_only - entered for what no longer holds since " in status.stdout
    assert f"({reason}); trendbotd resume to trade again" in status.stdout
    resumed = _cli(tmp_path, "resume", "--config", str(config), "--reason", "closed by hand")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout == (
        f"trendbotd: itest: resumed: reduce_only -> normal (was reduce_only: {reason}); "
        "takes effect at the daemon's next tick\n"
    )
    assert resumed.stderr == ""
    status = _cli(tmp_path, "status", "--config", str(config))
    assert f"state: running, PID {fourth.proc.pid} (" in status.stdout
    assert "mode:      normal - resumed by " in status.stdout
    assert f": closed by hand; was reduce_only: {reason}" in status.stdout
    again = _cli(tmp_path, "resume", "--config", str(config))
    assert again.returncode == 0
    assert again.stdout.startswith("trendbotd: itest: already normal: nothing to resume")
    fourth.stop()

    fifth, ready = start()
    assert ready.startswith("ready: normal"), ready
    fifth.stop()
    for daemon in daemons:
        assert "Traceback" not in daemon.log.read_text()
