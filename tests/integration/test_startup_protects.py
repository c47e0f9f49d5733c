"""A position found at startup without a stop is protected inside the startup sync, before
READY: the real paper daemon, the exchange's books read back from its state file.

Opened by hand while the daemon was down (so no stop price is known), it gets an
emergency stop ``[risk] emergency_stop_distance`` from the mark on the losing side; the
daemon stays in reduce-only mode for the hand-made position, as before.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from decimal import Decimal
from pathlib import Path

from order_invariants import StateFileReader
from support.daemon_harness import (
    REAL_CMD,
    NotifyListener,
    clean_env,
    record_unprotected,
    write_config,
)
from support.sim_ccxt import client

from trendbotd.sim import SimConfig, SimExchange

SYMBOL = "BTC/USDT:USDT"
# 12-hour candles and entries sized below the minimum quantity: the daemon only syncs.
EXTRA = """
[trading]
timeframe = "12h"

[risk]
risk_per_trade = 0.000001
emergency_stop_distance = 0.04
"""


def run_until_ready(
    tmp_path: Path, config: Path, listener: NotifyListener, log: Path
) -> tuple[subprocess.Popen[bytes], float]:
    after = len(listener.messages())
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*REAL_CMD, "run", "--paper", "--config", str(config)],
            cwd=tmp_path,
            env=clean_env(NOTIFY_SOCKET=listener.path),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    launched = time.monotonic()
    listener.wait_key("READY", "1", timeout=60, after=after, proc=proc)  # type: ignore[arg-type]
    return proc, launched


def stop(proc: subprocess.Popen[bytes], log: Path) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, log.read_text()[-3000:]


def test_position_without_a_stop_is_protected_before_ready(
    tmp_path: Path, notify_listener: NotifyListener
) -> None:
    config = write_config(tmp_path, EXTRA)
    state_file = tmp_path / "state" / "itest.paper.json"
    first_log = tmp_path / "first.log"
    proc, _ = run_until_ready(tmp_path, config, notify_listener, first_log)
    stop(proc, first_log)

    # Opened by hand in the exchange's web UI while the daemon is down: no stop.
    sim = SimExchange(SimConfig(symbols=(SYMBOL,), timeframe="12h", state_file=state_file))
    sim.start()
    try:
        exchange = client(sim)
        exchange.load_markets()
        exchange.create_order(SYMBOL, "market", "buy", 0.01)
    finally:
        sim.stop()
    traded = time.monotonic()
    books = StateFileReader(state_file, symbols=(SYMBOL,)).read()
    assert books is not None
    assert books.positions == {SYMBOL: Decimal("0.010")}
    assert books.covered(SYMBOL, Decimal("0.010")) == 0

    log = tmp_path / "second.log"
    proc, launched = run_until_ready(tmp_path, config, notify_listener, log)
    try:
        # Frozen at READY: what the exchange holds now was done before READY.
        proc.send_signal(signal.SIGSTOP)
        at_ready = StateFileReader(state_file, symbols=(SYMBOL,)).read()
        assert at_ready is not None
        assert at_ready.covered(SYMBOL, Decimal("0.010")) == Decimal("0.010")
        (stop_order,) = [a for a in at_ready.algos if a.is_open]
        assert (stop_order.side, stop_order.order_type, stop_order.reduce_only) == (
            "SELL",
            "STOP_MARKET",
            True,
        )
        # 4% below the mark, which has barely moved from the entry in these seconds
        entry = entry_price(state_file)
        assert abs(stop_order.trigger_price - entry * Decimal("0.96")) <= entry * Decimal("0.005")
        gap = at_ready.protection[SYMBOL]
        assert gap["open_since_ms"] is None and gap["gaps"] == 1
        start_ms, end_ms = gap["recent_gaps"][-1]
        # The gap began at the hand trade; the daemon's share is what follows its launch.
        after_launch = (end_ms - start_ms) - int((launched - traded) * 1000)
        record_unprotected(
            "startup: hand-made position, ms after the daemon's launch",
            {SYMBOL: {**gap, "max_gap_ms": max(after_launch, 0), "unprotected_ms": after_launch}},
        )
        print(f"\nunprotected after the daemon's launch: {after_launch} ms (stop before READY)")
    finally:
        proc.send_signal(signal.SIGCONT)
    text = log.read_text()
    assert f"stop.emergency symbol={SYMBOL} position=0.010 owned=False" in text
    assert text.index("stop.emergency") < text.index("daemon.ready")
    stop(proc, log)
    assert "Traceback" not in log.read_text()


def entry_price(state_file: Path) -> Decimal:
    data = json.loads(state_file.read_text())
    return Decimal(data["symbols"]["BTCUSDT"]["position"]["entry_price"])
