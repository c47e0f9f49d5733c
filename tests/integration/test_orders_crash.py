"""SIGKILL at every named step of the order path, in a real child process, then restart:
the startup resolver leaves no duplicate order, no unprotected position and no
unexplained state. (The daemon-level crash matrix lives with the engine's tests.)"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from order_invariants import protection_report
from orders_sim_support import (
    PRICE,
    SYMBOL,
    accepted_per_client_id,
    adapter,
    duplicates,
    journal_path,
    long_entry,
    manager,
    snapshot,
    unprotected,
)
from support.daemon_harness import record_unprotected

from trendbotd.core.client_ids import parse_client_id
from trendbotd.core.records import IntentState, Purpose, TradingMode
from trendbotd.journal.store import open_journal
from trendbotd.sim import SimConfig, SimExchange
from trendbotd.trading.crashpoints import STEPS

CHILD = str(Path(__file__).with_name("orders_crash_child.py"))
TESTS = str(Path(__file__).resolve().parents[1])


@pytest.fixture
def sim(request: pytest.FixtureRequest) -> Iterator[SimExchange]:
    # Many restarts in a few seconds: the per-minute request weight limit is not under test.
    exchange = SimExchange(SimConfig(symbols=(SYMBOL,), seed=5, weight_limit_per_minute=0)).start()
    exchange.account.set_price(SYMBOL, PRICE)
    try:
        yield exchange
        # Every entry here places its stop first: a kill anywhere leaves no bare position.
        report = protection_report(exchange.state)
        assert record_unprotected(request.node.name, report) == 0, report
    finally:
        exchange.stop()


def run_child(
    sim: SimExchange, path: Path, *, crash_at: str | None, first: int = 0, rounds: int = 1
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TRENDBOTD_CRASH_AT"}
    # the child imports `support.*` as the suite does (pyproject's pytest `pythonpath`)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [TESTS, env.get("PYTHONPATH")]))
    if crash_at is not None:
        env["TRENDBOTD_CRASH_AT"] = crash_at
    argv = [sys.executable, CHILD, sim.base_url, sim.api_key, sim.api_secret, str(path)]
    argv += [str(first), str(rounds)]
    return subprocess.run(
        argv,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def restart_and_check(sim: SimExchange, path: Path) -> None:
    """What the daemon does at startup, then the invariants."""
    exchange = adapter(sim.base_url, sim.api_key, sim.api_secret)
    with open_journal(path) as journal:
        pm = manager(exchange, journal)
        result = pm.sync(snapshot(exchange))
        assert result.reconciliation.consistent, result.reconciliation.reduce_only_reason()
        assert journal.controls.mode().mode is TradingMode.NORMAL
        assert duplicates(sim) == {}
        assert unprotected(sim) == []
        unsettled = [
            i.describe()
            for i in journal.orders.non_final_intents()
            if i.state is not IntentState.ACKED
        ]
        assert unsettled == []
        position = sim.account.position(SYMBOL).amount
        assert journal.account.expected_positions().get(SYMBOL, 0) == position
    exchange.close()


@pytest.mark.parametrize("step", STEPS)
def test_sigkill_at_each_step_then_restart(sim: SimExchange, tmp_path: Path, step: str) -> None:
    path = journal_path(tmp_path)
    proc = run_child(sim, path, crash_at=step)
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    assert f"crashpoint.kill step={step}" in proc.stderr
    assert "completed" not in proc.stdout

    restart_and_check(sim, path)
    if step == "between_stop_and_entry":
        # the stop went out, the entry never did: the restart's sync cancels the stop (a
        # stop of ours on a flat symbol) and sends nothing else
        assert sim.account.position(SYMBOL).amount == 0
        assert sim.account.open_orders(SYMBOL) == []
        stops = [
            c
            for c in accepted_per_client_id(sim)
            if (parsed := parse_client_id(c)) and parsed.purpose is Purpose.STOP
        ]
        assert len(stops) == 1
        with open_journal(path) as journal:
            (stop,) = [i for i in journal.orders.intents_since(0) if i.purpose is Purpose.STOP]
            assert stop.state is IntentState.CANCELED
            assert [i for i in journal.orders.intents_since(0) if i.purpose is Purpose.ENTRY] == []

    # The same decision after the restart never becomes a second order, and the round
    # can be finished.
    exchange = adapter(sim.base_url, sim.api_key, sim.api_secret)
    with open_journal(path) as journal:
        pm = manager(exchange, journal)
        pm.sync(snapshot(exchange))
        pm.open_position(long_entry())
        assert duplicates(sim) == {}
        assert unprotected(sim) == []
        closed = pm.close_position(SYMBOL, purpose=Purpose.EXIT, candle_time_ms=1, reason="t")
        assert closed.flat
    exchange.close()
    assert sim.account.open_orders(SYMBOL) == []
    restart_and_check(sim, path)


def test_child_without_crash_point_completes(sim: SimExchange, tmp_path: Path) -> None:
    proc = run_child(sim, journal_path(tmp_path), crash_at=None, rounds=2)
    assert proc.returncode == 0, proc.stderr
    assert "completed" in proc.stdout
    assert sim.account.position(SYMBOL).amount == 0
    restart_and_check(sim, journal_path(tmp_path))


@pytest.mark.slow
def test_random_kill_restart_cycles(sim: SimExchange, tmp_path: Path) -> None:
    """A short random sequence of kills (step and hit count), each followed by a restart."""
    rng = random.Random(20240611)
    path = journal_path(tmp_path)
    kills = 0
    for cycle in range(20):
        step = rng.choice(STEPS)
        proc = run_child(
            sim, path, crash_at=f"{step}@{rng.randint(1, 3)}", first=cycle * 3, rounds=3
        )
        assert proc.returncode in (0, -signal.SIGKILL), proc.stderr
        kills += proc.returncode == -signal.SIGKILL
        restart_and_check(sim, path)
    assert kills >= 10  # most cycles really died somewhere
