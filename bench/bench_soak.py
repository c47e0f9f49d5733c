"""Soak: the daemon's real trading stack on an accelerated clock, with random faults.

The same TradingRunner that ``trendbotd run --paper`` builds (journal in SQLite, the
simulated exchange on 127.0.0.1, ccxt over HTTP, position manager, engine) runs on a
ManualClock (``PaperReplay`` of tests/integration/paper_replay.py): each tick moves the
clock to the next candle close, or to a random instant inside the candle, and ticks once.
Before a random share of ticks one fault is armed on the exchange (connection dropped
before or after execution, reply withheld, 503, -1021, 429, -2022, -4116) on an order,
stop, cancel, query or read path that has none armed yet; it fires on the next matching
request (on an order path that may be many ticks later). After every tick
the invariants of tests/integration/order_invariants.py are checked on the exchange's own
books and the journal: no duplicate order, no order without its journal intent, one entry
per candle, no exposure above (or, unexplained, below) what the journal intended, the
trading mode still normal, every sync the daemon recorded saw a stop on every position,
and after every tick that completed, every position is under a reduce-only stop.

    .venv/bin/python bench/bench_soak.py [--ticks 10000] [--seed N] [--fault-rate 0.1]
    .venv/bin/python -m bench --only soak
"""

from __future__ import annotations

import argparse
import collections
import logging
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trendbotd.config import Config, load_config
from trendbotd.core.records import TradingMode
from trendbotd.errors import OperationalError, TrendbotError
from trendbotd.journal.store import open_journal
from trendbotd.sim import Fault, SimExchange
from trendbotd.trading.compose.journal import journal_location
from trendbotd.trading.engine import CANDLE_GRACE_MS

ROOT = Path(__file__).resolve().parents[1]
HOUR_MS = 3_600_000
FIRST_CLOSE_MS = 1_700_002_800_000  # an hour boundary in November 2023
INTRA_CANDLE_SHARE = 0.25  # ticks between candle closes: the sync-only path, as the loop does
TIMEOUT_S = 0.5  # the client's request timeout; a withheld reply outlasts it
UNPROTECTED_BOUND_MS = 1000  # where a stop has to be put back (0 where it goes first)
ORDER_PATHS = ("/fapi/v1/order", "/fapi/v1/algoOrder")

CONFIG = """
[instance]
name = "soak"
runtime_dir = "{tmp}/run"
state_dir = "{tmp}/lib"

[exchange]
paper = true
request_timeout_s = {timeout}

[paper]
regime = "mixed"
seed = {seed}

[trading]
symbols = ["BTC/USDT:USDT"]
timeframe = "1h"

[strategy]
fast = 8
slow = 21

[risk]
daily_loss_limit = 1.0
"""

_UNKNOWN = "Internal error; unable to process your request. Please try again."
FAULTS: dict[str, dict[str, Any]] = {
    "drop_before": {"kind": "drop_before"},
    "drop_after": {"kind": "drop_after"},
    "timeout": {"kind": "timeout", "delay_ms": int(TIMEOUT_S * 1000) + 300},
    "503 -1001": {"kind": "error", "binance_code": -1001, "http_status": 503, "msg": _UNKNOWN},
    "503 gateway": {"kind": "http_status", "http_status": 503, "body": "Service Unavailable"},
    "-1021": {"kind": "error", "binance_code": -1021, "msg": "Timestamp outside recvWindow."},
    "429": {"kind": "rate_limit"},
    "-2022": {"kind": "error", "binance_code": -2022, "msg": "ReduceOnly Order is rejected."},
    "-4116": {"kind": "error", "binance_code": -4116, "msg": "ClientOrderId is duplicated."},
}
_ANY = tuple(k for k in FAULTS if not k.startswith(("-2022", "-4116")))
TARGETS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # name: (method, path, fault kinds that make sense there)
    "entry/close": ("POST", "/fapi/v1/order", tuple(FAULTS)),
    "stop": ("POST", "/fapi/v1/algoOrder", tuple(FAULTS)),
    "stop cancel": ("DELETE", "/fapi/v1/algoOrder", _ANY),
    "order query": ("GET", "/fapi/v1/order", _ANY),
    "stop query": ("GET", "/fapi/v1/algoOrder", _ANY),
    "positions": ("GET", "/fapi/v3/positionRisk", _ANY),
    "balance": ("GET", "/fapi/v3/account", _ANY),
    "open orders": ("GET", "/fapi/v1/open*", _ANY),
    "candles": ("GET", "/fapi/v1/klines", _ANY),
}


@dataclass
class SoakReport:
    seed: int
    ticks: int = 0
    candle_ticks: int = 0
    failed_ticks: collections.Counter[str] = field(default_factory=collections.Counter)
    sent: collections.Counter[str] = field(default_factory=collections.Counter)
    faults_armed: int = 0
    faults_fired: collections.Counter[str] = field(default_factory=collections.Counter)
    fired_on: collections.Counter[str] = field(default_factory=collections.Counter)
    violations: dict[str, int] = field(default_factory=dict)  # first text -> tick
    kinds: collections.Counter[str] = field(default_factory=collections.Counter)
    orders_seen: int = 0
    # measured by the simulated exchange: the longest stretch any position went without a
    # covering stop (on the replay's clock, which backoff pauses advance), and all of them
    max_unprotected_ms: int = 0
    unprotected_ms: int = 0
    unprotected_gaps: int = 0
    wall_s: float = 0.0
    stopped: str = ""  # why the run ended early (the daemon would have exited)

    @property
    def ticks_per_s(self) -> float:
        return self.ticks / self.wall_s if self.wall_s else 0.0

    @property
    def violation_count(self) -> int:
        return sum(self.kinds.values())

    def lines(self) -> list[str]:
        fired = sum(self.faults_fired.values())
        kinds = " ".join(f"{k}={n}" for k, n in sorted(self.faults_fired.items()))
        paths = " ".join(f"{k}={n}" for k, n in sorted(self.fired_on.items()))
        failed = " ".join(f"{k}={n}" for k, n in sorted(self.failed_ticks.items())) or "none"
        found = " ".join(f"{k}={n}" for k, n in sorted(self.kinds.items())) or "none"
        out = [
            f"soak: seed {self.seed}, {self.ticks:,} engine ticks ({self.candle_ticks:,} at a "
            f"candle close, {self.ticks - self.candle_ticks:,} inside a candle) in "
            f"{self.wall_s:.1f} s = {self.ticks_per_s:.1f} ticks/s",
            f"orders sent: {self.sent['order']:,} plain + {self.sent['algo']:,} stop requests "
            f"({self.sent['accepted']:,} accepted); {self.orders_seen:,} distinct exchange "
            "orders of ours",
            f"faults injected: {fired:,} fired of {self.faults_armed:,} armed; by kind: {kinds}",
            f"faults by path: {paths}",
            f"failed ticks (retried by the next tick): {failed}",
            f"unprotected time (measured by the exchange): max {self.max_unprotected_ms} ms, "
            f"total {self.unprotected_ms} ms in {self.unprotected_gaps} gaps",
            f"violations: {self.violation_count} ({found})",
        ]
        out += [f"  tick {tick}: {text}" for text, tick in list(self.violations.items())[:20]]
        if self.stopped:
            out.append(f"stopped early: {self.stopped}")
        return out


def _helpers() -> tuple[Any, Any]:
    """PaperReplay and the invariants live with the integration tests."""
    sys.path.insert(0, str(ROOT / "tests" / "integration"))
    import order_invariants
    import paper_replay

    return paper_replay, order_invariants


def soak_config(directory: Path, *, seed: int) -> Config:
    path = directory / "soak.toml"
    path.write_text(CONFIG.format(tmp=directory, seed=seed, timeout=TIMEOUT_S))
    return load_config(path)


def _arm(sim: SimExchange, target: str, rng: random.Random) -> tuple[str, Fault]:
    method, path, kinds = TARGETS[target]
    kind = rng.choice(kinds)
    return kind, sim.faults.add(Fault(method=method, path=path, times=1, **FAULTS[kind]))


def _count_requests(sim: SimExchange, report: SoakReport) -> None:
    for r in sim.requests:
        if r.method == "POST" and r.path in ORDER_PATHS:
            report.sent["algo" if r.path.endswith("algoOrder") else "order"] += 1
            report.sent["accepted"] += r.accepted
    sim.clear_requests()


def _one_tick(replay: Any, rng: random.Random, report: SoakReport) -> bool:
    """A tick at the next candle close or inside the current candle; True if it completed."""
    now = replay.clock.now_ms()
    close = (now // HOUR_MS + 1) * HOUR_MS + CANDLE_GRACE_MS
    try:
        if rng.random() < INTRA_CANDLE_SHARE and close - now > 2:
            replay.clock.advance(rng.randint(1, close - now - 1))
            status = replay.tick()
        else:
            status = replay.step()
            report.candle_ticks += 1
    except OperationalError:
        raise
    except TrendbotError as e:
        report.failed_ticks[type(e).__name__] += 1
        return False
    if str(status).startswith("exchange error"):
        report.failed_ticks["exchange error"] += 1
        return False
    return True


def run_soak(
    *, ticks: int, seed: int, fault_rate: float, directory: Path, progress: bool = True
) -> SoakReport:
    paper_replay, inv = _helpers()
    config = soak_config(directory, seed=seed)
    rng = random.Random(seed)
    report = SoakReport(seed=seed)
    ledger = inv.Ledger(config.instance.name)
    armed: dict[str, tuple[str, Fault]] = {}  # target -> (kind, the rule until it fires)
    started = time.monotonic()
    with paper_replay.PaperReplay(config, first_close_ms=FIRST_CLOSE_MS) as replay:
        sim: SimExchange = replay.sim
        _, path = journal_location(config)
        syncs = inv.SyncRecords(path)
        with open_journal(path, read_only=True) as journal:
            for n in range(1, ticks + 1):
                if rng.random() < fault_rate:
                    target = rng.choice(sorted(TARGETS))
                    if target not in armed:
                        armed[target] = _arm(sim, target, rng)
                        report.faults_armed += 1
                try:
                    completed = _one_tick(replay, rng, report)
                except OperationalError as e:
                    report.stopped = f"tick {n}: {type(e).__name__}: {e}"
                    break
                report.ticks = n
                active = {id(f) for f in sim.faults.active()}
                for target, (kind, fault) in list(armed.items()):
                    if id(fault) not in active:
                        report.faults_fired[kind] += 1
                        report.fired_on[target] += 1
                        del armed[target]
                _count_requests(sim, report)
                books = inv.books_of(sim.state, clock_ms=replay.clock.now_ms())
                found = ledger.record(books, journal) + syncs.unprotected()
                found += inv.exposure_violations(books, journal)
                if completed:
                    found += inv.protection_violations(books, journal, in_flight_from_ms=None)
                mode = journal.controls.mode()
                if mode.mode is not TradingMode.NORMAL:
                    found.append(f"mode {mode.mode}: {mode.reason}")
                for text in found:
                    if text not in report.violations:
                        report.violations[text] = n
                        report.kinds[text.split(":", 1)[0]] += 1
                if progress and n % 1000 == 0:
                    rate = n / (time.monotonic() - started)
                    print(f"[soak] {n:,} ticks, {rate:.0f}/s", file=sys.stderr, flush=True)
            _unprotected_time(inv, sim, report)
        syncs.close()
        report.orders_seen = ledger.orders_seen
    report.wall_s = time.monotonic() - started
    return report


def _unprotected_time(inv: Any, sim: SimExchange, report: SoakReport) -> None:
    """The exchange's own measure over the whole run, and a violation beyond the bound."""
    protection = inv.protection_report(sim.state)
    report.max_unprotected_ms = inv.max_unprotected_ms(protection)
    report.unprotected_ms = sum(int(r["unprotected_ms"]) for r in protection.values())
    report.unprotected_gaps = sum(int(r["gaps"]) for r in protection.values())
    for text in inv.unprotected_time_violations(protection, bound_ms=UNPROTECTED_BOUND_MS):
        report.violations[text] = report.ticks
        report.kinds[text.split(":", 1)[0]] += 1


def soak_rows(report: SoakReport) -> list[Any]:
    """The soak's figures as rows of ``python -m bench``'s table."""
    from bench.common import Row, Target

    fired = sum(report.faults_fired.values())
    return [
        Row(
            f"soak: engine ticks with random faults ({fired} fired)",
            report.ticks,
            "ticks",
            target=Target("min", 10_000, ">= 10,000 ticks"),
            runs=1,
        ),
        Row("soak: tick rate", report.ticks_per_s, "ticks/s", runs=1),
        Row(
            "soak: longest unprotected position (exchange-measured)",
            report.max_unprotected_ms,
            "ms",
            target=Target("max", UNPROTECTED_BOUND_MS + 1, f"<= {UNPROTECTED_BOUND_MS} ms"),
            runs=1,
        ),
        Row(
            "soak: violations (duplicate, unprotected, exposure)",
            report.violation_count,
            "found",
            target=Target("max", 1, "0"),
            runs=1,
        ),
    ]


def quiet_daemon_logs() -> None:
    """The daemon's own log lines (warnings for every fault it rides out) are not the result."""
    logging.basicConfig(level=logging.CRITICAL)
    logging.getLogger("trendbotd").setLevel(logging.CRITICAL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--fault-rate", type=float, default=0.1, help="share of ticks before which a fault is armed"
    )
    args = parser.parse_args(argv)
    quiet_daemon_logs()
    with tempfile.TemporaryDirectory(prefix="tbd-soak-", dir="/tmp") as tmp:
        report = run_soak(
            ticks=args.ticks, seed=args.seed, fault_rate=args.fault_rate, directory=Path(tmp)
        )
    print("\n".join(report.lines()))
    return 1 if report.violation_count or report.stopped else 0


if __name__ == "__main__":
    sys.exit(main())
