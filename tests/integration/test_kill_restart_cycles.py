"""Hundreds of SIGKILLs of the real paper daemon, at crash points of the order path and at
random instants, each followed by a restart on the same journal and the same simulated
account (the paper state file): never a duplicate order, never more exposure than the
journal intended, and after every restart (READY and one tick) every position has a
reduce-only stop on the exchange, and every sync the daemon recorded (the startup sync
before READY included) saw a stop on every position.

The account is read back from the state file with the simulator's own codec, the journal
read-only, both after each kill and while the restarted daemon is frozen (SIGSTOP) right
after its first tick. ``TRENDBOTD_KILL_SEED`` / ``TRENDBOTD_KILL_CYCLES`` override the seed
and the number of cycles; a failure prints the seed and the cycle to rerun it.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from order_invariants import (
    Books,
    Ledger,
    StateFileReader,
    SyncRecords,
    exposure_violations,
    protection_violations,
)
from support.daemon_harness import REAL_CMD, NotifyListener, clean_env, record_unprotected

from trendbotd.core.records import IntentState, TradingMode
from trendbotd.journal.store import open_journal
from trendbotd.trading.crashpoints import ENV_VAR, STEPS

SEED = int(os.environ.get("TRENDBOTD_KILL_SEED", "20240611"))
CYCLES = int(os.environ.get("TRENDBOTD_KILL_CYCLES", "200"))
CRASH_SHARE = 0.4  # cycles armed with TRENDBOTD_CRASH_AT; the rest die at a random instant
MAX_RUN_S = 0.4  # a random kill comes this long at most after the first tick
CRASH_WAIT_S = 1.2  # an armed crash point not reached by then: SIGKILL from outside
NOTIFY_WAIT_S = 120  # only bounds a wait for READY/STATUS: generous for a loaded machine
INSTANCE = "killcycles"
SYMBOL = "BTC/USDT:USDT"

# 1m candles 900x faster than real time: one candle every 67 ms. On a market of clean
# trends with pullbacks (see write_stairs) the short EMAs enter, trail, exit and reverse:
# several orders per second of real time.
CONFIG = """
[instance]
name = "{name}"
runtime_dir = "{tmp}/run"
state_dir = "{tmp}/lib"

[exchange]
paper = true

[paper]
speed = 900
data_csv = "{tmp}/stairs.csv"

[trading]
symbols = ["{symbol}"]
timeframe = "1m"

[strategy]
fast = 3
slow = 8
atr_stop_mult = 4.0
trail_mult = 6.0

[risk]
daily_loss_limit = 1.0
max_notional = 8000

[service]
tick_interval_s = 0.05
startup_timeout_s = 30
"""


@dataclass
class Run:
    """Everything one test run has seen, and what went wrong (with the cycle)."""

    ledger: Ledger = field(default_factory=lambda: Ledger(INSTANCE))
    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    crash_steps: collections.Counter[str] = field(default_factory=collections.Counter)
    violations: list[str] = field(default_factory=list)
    # the exchange's unprotected-time figures (paper clock) as of the last check, and the
    # cycles that added a gap: (cycle, crash point, the gaps' new ms)
    protection: dict[str, dict[str, object]] = field(default_factory=dict)
    gap_cycles: list[tuple[int, str, int]] = field(default_factory=list)

    def add(self, cycle: int, where: str, found: list[str]) -> None:
        self.violations += [f"cycle {cycle} {where}: {v}" for v in found]


class Cycles:
    def __init__(self, tmp: Path, listener: NotifyListener) -> None:
        self.tmp = tmp
        self.listener = listener
        self.config = tmp / "kill.toml"
        write_stairs(tmp / "stairs.csv", bars=12_000, seed=SEED)
        self.config.write_text(CONFIG.format(name=INSTANCE, tmp=tmp, symbol=SYMBOL))
        self.journal = tmp / "lib" / f"{INSTANCE}.db"
        self.books = StateFileReader(tmp / "lib" / f"{INSTANCE}.paper.json", symbols=(SYMBOL,))
        self.logs = tmp / "logs"
        self.logs.mkdir()
        self.run = Run()
        self.syncs: SyncRecords | None = None  # once the first daemon created the journal
        self.crash_at: str | None = None  # the running cycle's crash point

    def start(self, cycle: int, crash_at: str | None) -> subprocess.Popen[bytes]:
        env = clean_env(NOTIFY_SOCKET=self.listener.path)
        if crash_at is not None:
            env[ENV_VAR] = crash_at
        with (self.logs / f"cycle-{cycle:03d}.log").open("wb") as log:
            return subprocess.Popen(
                [*REAL_CMD, "run", "--paper", "--config", str(self.config)],
                env=env,
                cwd=self.tmp,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_notify(self, key: str, *, after: int, proc: subprocess.Popen[bytes]) -> int | None:
        """Index of the first message from ``after`` carrying ``key``; None if the daemon died."""
        deadline = time.monotonic() + NOTIFY_WAIT_S
        while time.monotonic() < deadline:
            for i, msg in enumerate(self.listener.messages()[after:], start=after):
                if key in msg.fields:
                    return i
            if proc.poll() is not None:
                return None
            time.sleep(0.005)
        raise AssertionError(f"no {key} from the daemon within {NOTIFY_WAIT_S} s")

    def read(self) -> Books | None:
        return self.books.read()

    def check(
        self, cycle: int, where: str, *, protection: bool, in_flight_from_ms: int | None
    ) -> Books | None:
        """Every invariant on the state file and the journal as they are now; stops are
        checked only with ``protection`` (entries since ``in_flight_from_ms`` may still be
        on their way to their stop; None: none may)."""
        books = self.read()
        if books is None or not self.journal.exists():
            return books
        self.note_unprotected(cycle, books)
        if self.syncs is None:
            self.syncs = SyncRecords(self.journal)
        with open_journal(self.journal, read_only=True) as journal:
            found = self.run.ledger.record(books, journal) + self.syncs.unprotected()
            found += exposure_violations(books, journal)
            if protection:
                found += protection_violations(books, journal, in_flight_from_ms=in_flight_from_ms)
            mode = journal.controls.mode()
            if mode.mode is not TradingMode.NORMAL:
                found.append(f"mode {mode.mode}: {mode.reason}")
        self.run.add(cycle, where, found)
        return books

    def note_unprotected(self, cycle: int, books: Books) -> None:
        before = sum(int(r["unprotected_ms"]) for r in self.run.protection.values())  # type: ignore[call-overload]
        now = sum(int(r["unprotected_ms"]) for r in books.protection.values())
        if now > before:
            self.run.gap_cycles.append((cycle, self.crash_at or "random instant", now - before))
        self.run.protection = books.protection

    def frozen_check(self, cycle: int, proc: subprocess.Popen[bytes], since_ms: int) -> None:
        """SIGSTOP the daemon, check the books it left after its restart, SIGCONT."""
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            if not _wait_stopped(proc.pid):
                # died at its crash point first: the check after the kill covers it
                self.run.counts["crashed before the freeze"] += 1
                return
            books = self.check(cycle, "after restart", protection=True, in_flight_from_ms=since_ms)
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        self.run.counts["restart checks"] += 1
        if books is not None and books.positions:
            self.run.counts["restart checks with a position"] += 1

    def cycle(self, cycle: int, rng: random.Random) -> None:
        crash_at = None
        if rng.random() < CRASH_SHARE:
            crash_at = f"{rng.choice(STEPS)}@{rng.choice((1, 1, 2))}"
        run_s = rng.uniform(0, MAX_RUN_S)
        self.crash_at = crash_at
        before = self.read()
        since_ms = before.clock_ms if before is not None else 0
        mark = len(self.listener.messages())
        proc = self.start(cycle, crash_at)
        try:
            ready = self.wait_notify("READY", after=mark, proc=proc)
            ticked = (
                None if ready is None else self.wait_notify("STATUS", after=ready + 1, proc=proc)
            )
            if ticked is not None:
                self.frozen_check(cycle, proc, since_ms)
            if crash_at is not None:
                try:
                    proc.wait(timeout=CRASH_WAIT_S)
                except subprocess.TimeoutExpired:
                    self.run.counts["crash point not reached"] += 1
            elif proc.poll() is None:
                time.sleep(run_s)
        finally:
            if proc.poll() is None:
                proc.kill()
            code = proc.wait(timeout=30)
        self.account_for_death(cycle, code, ready=ticked is not None)
        # A daemon killed before its first tick may have been repairing a stop: the next
        # restart's check covers that. One that ticked answers for its own entries only.
        self.check(
            cycle, "after the kill", protection=ticked is not None, in_flight_from_ms=since_ms
        )

    def account_for_death(self, cycle: int, code: int, *, ready: bool) -> None:
        log = (self.logs / f"cycle-{cycle:03d}.log").read_text(errors="replace")
        if code != -signal.SIGKILL:
            self.run.add(cycle, "exit", [f"daemon exited {code} by itself:\n{log[-3000:]}"])
        if "Traceback" in log:
            self.run.add(cycle, "log", [f"traceback in the log:\n{log[-3000:]}"])
        fired = next((s for s in STEPS if f"crashpoint.kill step={s} " in log), None)
        if fired is not None:
            self.run.crash_steps[fired] += 1
            self.run.counts["crash-point kills"] += 1
        else:
            self.run.counts["random-instant kills"] += 1
        if not ready:
            self.run.counts["kills before the first tick"] += 1

    def final(self, cycle: int) -> None:
        """A last restart without crash points, checked, then a clean SIGTERM stop."""
        before = self.read()
        mark = len(self.listener.messages())
        proc = self.start(cycle, None)
        try:
            ready = self.wait_notify("READY", after=mark, proc=proc)
            assert ready is not None, "the final restart never became ready"
            assert self.wait_notify("STATUS", after=ready + 1, proc=proc) is not None
            self.frozen_check(cycle, proc, before.clock_ms if before else 0)
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
        log = (self.logs / f"cycle-{cycle:03d}.log").read_text(errors="replace")
        if code != 0:
            self.run.add(cycle, "final stop", [f"exit {code}:\n{log[-3000:]}"])
        self.check(cycle, "after the final stop", protection=True, in_flight_from_ms=None)
        with open_journal(self.journal, read_only=True) as journal:
            unsettled = [
                i.describe()
                for i in journal.orders.non_final_intents()
                if i.state is not IntentState.ACKED
            ]
        self.run.add(cycle, "final journal", [f"unsettled intent {u}" for u in unsettled])


def write_stairs(path: Path, *, bars: int, seed: int) -> None:
    """1m candles in legs of 150-400 bars, each a staircase of impulses and pullbacks:
    trending enough for any trend filter, choppy enough for frequent exits."""
    rng = random.Random(seed)
    price, direction, leg, phase = 30_000.0, 1, 0, 0
    rows = ["timestamp,open,high,low,close,volume"]
    for i in range(bars):
        if leg == 0:
            direction = 1 if price < 30_000 else -1
            direction = -direction if rng.random() < 0.3 else direction
            leg = rng.randint(150, 400)
        leg -= 1
        if phase == 0:
            phase = rng.randint(6, 12)
        if phase > 0:
            step = direction * rng.uniform(0.002, 0.0045)
            phase -= 1
            phase = phase or -rng.randint(4, 7)
        else:
            step = -direction * rng.uniform(0.0015, 0.0035)
            phase += 1
        close = price * (1 + step)
        high = max(price, close) * (1 + rng.uniform(0, 0.0008))
        low = min(price, close) * (1 - rng.uniform(0, 0.0008))
        t = 1_577_836_800_000 + i * 60_000
        rows.append(f"{t},{price:.1f},{high:.1f},{low:.1f},{close:.1f},{rng.uniform(5, 50):.3f}")
        price = close
    path.write_text("\n".join(rows) + "\n")


def _wait_stopped(pid: int) -> bool:
    """Until the kernel reports the process stopped (SIGSTOP is delivered asynchronously).
    False when it died first: a crash point can fire between its first tick and the stop."""
    stat = Path(f"/proc/{pid}/stat")
    deadline = time.monotonic() + 30  # bounds a wait only
    while time.monotonic() < deadline:
        try:
            state = stat.read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return False
        if state in ("T", "t"):
            return True
        if state in ("Z", "X"):
            return False
        time.sleep(0.001)
    raise AssertionError(f"process {pid} did not stop")


@pytest.mark.slow
def test_randomized_kill_restart_cycles(tmp_path: Path, notify_listener: NotifyListener) -> None:
    rng = random.Random(SEED)
    cycles = Cycles(tmp_path, notify_listener)
    started = time.monotonic()
    for cycle in range(CYCLES):
        cycles.cycle(cycle, rng)
        if cycles.run.violations:
            break  # the state is what the failing cycle left: rerun with the seed to see it
    else:
        cycles.final(CYCLES)
    if cycles.syncs is not None:
        cycles.syncs.close()
    run = cycles.run
    steps = ",".join(f"{s}={n}" for s, n in sorted(run.crash_steps.items()))
    print(
        f"\nkill/restart: seed={SEED} cycles={CYCLES} crash-point kills="
        f"{run.counts['crash-point kills']} ({steps}) random-instant kills="
        f"{run.counts['random-instant kills']} kills before the first tick="
        f"{run.counts['kills before the first tick']} crash points not reached="
        f"{run.counts['crash point not reached']} restart checks="
        f"{run.counts['restart checks']} (with a position "
        f"{run.counts['restart checks with a position']}) orders seen="
        f"{run.ledger.orders_seen} violations={len(run.violations)} "
        f"wall={time.monotonic() - started:.0f}s"
    )
    longest = record_unprotected(f"kill/restart cycles ({CYCLES}, paper clock)", run.protection)  # type: ignore[arg-type]
    print(
        f"unprotected time (exchange-measured, paper clock at speed 900): max {longest} ms; "
        f"cycles that added a gap: {run.gap_cycles or 'none'}"
    )
    assert run.violations == [], f"TRENDBOTD_KILL_SEED={SEED}; logs in {cycles.logs}\n" + "\n".join(
        run.violations[:20]
    )
    # The cycles really exercised the order path and its repair.
    assert run.ledger.orders_seen >= CYCLES // 2
    assert run.counts["crash-point kills"] >= CYCLES // 5
    assert run.counts["restart checks with a position"] >= CYCLES // 10
    # Every entry places its stop first and every move places the new stop before the old
    # one goes: no kill, anywhere, leaves a position bare on the exchange.
    assert longest == 0, run.gap_cycles
