"""Slow round trips are not a broken clock: the simulator delays both ways as a network
does, and the paper daemon with ``response_delay_ms = 1500`` (a documented setting)
reaches READY instead of failing its start on a 750 ms "clock offset"."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from exchange_helpers import SYMBOL, adapter
from support.daemon_harness import REAL_CMD, NotifyListener, clean_env, write_config
from support.startup_steps import RecordedProgress

from trendbotd.adapters.clock import SystemClock
from trendbotd.errors import StartupSyncError
from trendbotd.sim import SimConfig, SimExchange
from trendbotd.trading.startup import sync_account


def test_the_simulators_reply_delay_leaves_server_time_mid_round_trip() -> None:
    with SimExchange(SimConfig(symbols=(SYMBOL,), response_delay_ms=400)) as sim:
        exchange = adapter(sim)
        try:
            offset = exchange.measure_clock()
        finally:
            exchange.close()
    assert offset.round_trip_ms is not None and offset.round_trip_ms >= 400  # delayed ...
    assert offset.uncertainty_ms >= 200  # ... so the measurement says it cannot see better
    # Same clock on both sides: the true offset is 0. Stamped before the whole delay (or
    # after it) it would read -200 (+200).
    assert abs(offset.offset_ms) <= 60, offset


def test_too_slow_to_measure_is_said_and_not_blamed_on_the_host_clock() -> None:
    # A live bound (500 ms) and round trips of 1100 ms: the offset is unknowable to 550 ms.
    clock = SystemClock()
    with SimExchange(SimConfig(symbols=(SYMBOL,), response_delay_ms=1100)) as sim:
        exchange = adapter(sim)
        try:
            with pytest.raises(StartupSyncError, match="'syncing time'") as excinfo:
                sync_account(
                    exchange=exchange,
                    symbols=(SYMBOL,),
                    progress=RecordedProgress(),
                    clock=clock,
                    deadline_ms=clock.now_ms() + 500,  # one attempt
                    max_clock_offset_ms=500,
                )
        finally:
            exchange.close()
    message = str(excinfo.value)
    found = re.search(
        r"round trip (\d+) ms too slow to measure the clock within the bound of 500 ms", message
    )
    assert found is not None, message
    assert int(found[1]) >= 1100
    assert "time synchronisation" not in message


@pytest.fixture
def daemon_log(tmp_path: Path) -> Iterator[tuple[Path, list[subprocess.Popen[bytes]]]]:
    """Where the daemon's output goes, and the processes to kill (by PID) at teardown."""
    started: list[subprocess.Popen[bytes]] = []
    yield tmp_path / "daemon.log", started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)


def _wait_ready(
    listener: NotifyListener, log: Path, proc: subprocess.Popen[bytes], *, timeout: float
) -> str:
    """READY's STATUS= text; fails at once when the daemon retries its clock step or exits."""
    deadline = time.monotonic() + timeout
    while True:
        for message in listener.messages():
            if message.fields.get("READY") == "1":
                return message.fields.get("STATUS", "")
        text = log.read_text(errors="replace")
        if "startup.retry step=syncing time" in text:
            raise AssertionError("the clock step was refused:\n" + text[-2000:])
        if proc.poll() is not None:
            raise AssertionError(f"daemon exited {proc.returncode}:\n{text[-2000:]}")
        assert time.monotonic() < deadline, "no READY within the timeout:\n" + text[-2000:]
        time.sleep(0.1)


def test_paper_daemon_with_slow_replies_reaches_ready(
    tmp_path: Path,
    notify_listener: NotifyListener,
    daemon_log: tuple[Path, list[subprocess.Popen[bytes]]],
) -> None:
    log, started = daemon_log
    config = write_config(tmp_path, "[paper]\nresponse_delay_ms = 1500\n")
    begun = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*REAL_CMD, "run", "--foreground", "--paper", "--config", str(config)],
            cwd=tmp_path,
            env=clean_env(NOTIFY_SOCKET=notify_listener.path),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    started.append(proc)
    status = _wait_ready(notify_listener, log, proc, timeout=75)
    elapsed = time.monotonic() - begun
    assert status.startswith("ready: normal"), status
    text = log.read_text()
    measured = re.search(r"clock\.measured offset_ms=(-?\d+) uncertainty_ms=(\d+)", text)
    assert measured is not None, text[-2000:]
    offset_ms, uncertainty_ms = int(measured[1]), int(measured[2])
    assert abs(offset_ms) <= 100, text[-2000:]  # mid-round-trip: no false 750 ms offset
    assert uncertainty_ms >= 750  # the delay was there and was measured
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, log.read_text()[-2000:]
    print(f"launch to READY with 1500 ms replies: {elapsed:.1f} s, offset {offset_ms} ms")
