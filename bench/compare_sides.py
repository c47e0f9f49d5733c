"""The launches of bench/bench_compare.py: each side's daemon runs the code of its own
checkout (``python -m trendbotd`` with PYTHONPATH set to it), against simulated exchanges
that run the --after checkout's code in processes of their own."""

from __future__ import annotations

import json
import select
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from bench.bench_daemon import (
    SETTLE_S,
    SYMBOLS_1,
    SYMBOLS_10,
    Instance,
    idle_window,
    side_by_side,
)
from bench.bench_latency import TIMEFRAME_MS, Case, join_samples, paper_run
from bench.common import (
    PYTHON,
    NotifyListener,
    SimProcess,
    clean_env,
    log,
    rss_bytes,
    stop_process,
)
from bench.compare_accounting import (
    TickTally,
    candle_closes,
    hits_from_log,
    order_latencies_ms,
    tally_ticks,
)
from trendbotd.trading.engine import CANDLE_GRACE_MS

TICK_INTERVAL_S = 2.0  # between-candle re-syncs of the tick phase (production: 60 s)
TICKS_AFTER_CLOSE = 4  # the tick phase ends this many ticks after the candle close
TICKS_TIMEFRAME = "1m"


@dataclass(frozen=True, slots=True)
class Tree:
    """One checkout of the project: its code runs the daemon of one side."""

    label: str  # "before" or "after"
    root: Path

    @property
    def command(self) -> tuple[str, ...]:
        return (PYTHON, "-m", "trendbotd")

    @property
    def env(self) -> dict[str, str]:
        return {"PYTHONPATH": str(self.root)}

    def prepare(self) -> None:
        """Check that this checkout's package is the one imported, and compile it, so the
        first launch of a fresh checkout does not pay for its .pyc files."""
        env = clean_env(**self.env)
        probe = [PYTHON, "-c", "import trendbotd; print(trendbotd.__file__)"]
        found = subprocess.run(probe, env=env, cwd="/", capture_output=True, check=True, text=True)
        if not Path(found.stdout.strip()).is_relative_to(self.root.resolve()):
            raise RuntimeError(f"{self.label}: imports {found.stdout.strip()}, not {self.root}")
        compile_all = [PYTHON, "-m", "compileall", "-q", str(self.root / "trendbotd")]
        subprocess.run(compile_all, env=env, cwd="/", capture_output=True, check=True)


@dataclass(frozen=True, slots=True)
class TickRound:
    tallies: list[TickTally]
    rss: int  # bytes, SETTLE_S after READY=1 (10 symbols)


def _get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=30) as reply:  # 127.0.0.1 only
        return json.loads(reply.read())


def latency_launch(tree: Tree, directory: Path, case: Case, name: str) -> tuple[list[float], bool]:
    """Close+grace-to-order milliseconds of one paper launch, and whether the journal
    join (bench_latency's method) served; when that checkout's journal cannot be read
    that way, the candle comes from the client order id instead."""
    run = paper_run(directory, name, case, command=tree.command, env=tree.env)
    try:
        samples = join_samples(run.journal, run.requests, ready_ms=run.ready_ms, speed=case.speed)
    except sqlite3.Error as e:
        log(f"  {name}: journal join failed ({e}); candles from the client order ids")
        hits = hits_from_log(run.requests)
        latencies = order_latencies_ms(
            hits,
            ready_ms=run.ready_ms,
            timeframe_ms=TIMEFRAME_MS,
            grace_ms=CANDLE_GRACE_MS,
            speed=case.speed,
        )
        return latencies, False
    return [s.total_ms for s in samples], True


def _pump(
    listeners: Sequence[NotifyListener],
    procs: Sequence[subprocess.Popen[bytes]],
    *,
    until: Callable[[], bool],
    timeout_s: float,
    what: str,
) -> None:
    """Record every datagram the moment it arrives (its time marks a tick's end) until
    ``until()`` holds; a daemon that exits or a timeout is an error."""
    deadline = time.monotonic() + timeout_s
    while not until():
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {what} within {timeout_s:g} s")
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"a daemon exited {proc.returncode} while waiting for {what}")
        readable, _, _ = select.select(list(listeners), [], [], 0.2)
        for listener in readable:
            listener.receive(timeout_s=0)


def _ready_index(listener: NotifyListener) -> int | None:
    for i, (_, text) in enumerate(listener.messages):
        if "READY=1" in text.splitlines():
            return i
    return None


def _tick_ends_ms(listener: NotifyListener, wall_offset_s: float) -> list[int]:
    """Wall-clock ms of each STATUS= after READY=1 (each ends one tick)."""
    start = _ready_index(listener)
    assert start is not None
    return [
        int((at + wall_offset_s) * 1000)
        for at, text in listener.messages[start + 1 :]
        if any(line.startswith("STATUS=") for line in text.splitlines())
    ]


def tick_round(slots: Sequence[tuple[Tree, SimProcess]], directory: Path) -> list[TickRound]:
    """One 10-symbol daemon per slot (its side's code, its own simulator so that the
    request logs stay apart), all side by side, from READY=1 through the next 1m candle
    close (and its scheduled wake) to TICKS_AFTER_CLOSE ticks after it."""
    wall_offset_s = time.time() - time.perf_counter()
    instances = [
        Instance(
            directory,
            f"ticks-{tree.label}-{i}",
            SYMBOLS_10,
            sim,
            tick_interval_s=TICK_INTERVAL_S,
            timeframe=TICKS_TIMEFRAME,
            command=tree.command,
            env=tree.env,
        )
        for i, (tree, sim) in enumerate(slots)
    ]
    with ExitStack() as stack:
        listeners = [
            stack.enter_context(NotifyListener(directory / f"notify-{i.name}")) for i in instances
        ]
        procs: list[subprocess.Popen[bytes]] = []
        stack.callback(lambda: [stop_process(p) for p in procs])
        for instance, listener in zip(instances, listeners, strict=True):
            instance.write()
            procs.append(instance.spawn(listener))
        try:
            rss = _through_a_close(listeners, procs, wall_offset_s)
        except RuntimeError as e:
            tails = "\n".join(f"--- {i.name}:\n{i.tail()}" for i in instances)
            raise RuntimeError(f"ticks: {e}\n{tails}") from None
        logs = [_get_json(f"{sim.base_url}/sim/requests") for _, sim in slots]
        for instance, proc in zip(instances, procs, strict=True):
            if stop_process(proc) != 0:
                raise RuntimeError(f"{instance.name}: exit {proc.returncode}\n{instance.tail()}")
    result: list[TickRound] = []
    for listener, size, entries in zip(listeners, rss, logs, strict=True):
        ends = _tick_ends_ms(listener, wall_offset_s)
        assert isinstance(entries, list)
        closes = candle_closes(ends[0], ends[-1], timeframe_ms=TIMEFRAME_MS)
        result.append(TickRound(tally_ticks(ends, hits_from_log(entries), closes), size))
    return result


def _through_a_close(
    listeners: Sequence[NotifyListener],
    procs: Sequence[subprocess.Popen[bytes]],
    wall_offset_s: float,
) -> list[int]:
    """Wait for READY=1 of every daemon, read their RSS SETTLE_S later, then wait for the
    next candle close's scheduled wake and TICKS_AFTER_CLOSE ticks after it."""

    def ready() -> bool:
        return all(_ready_index(x) is not None for x in listeners)

    _pump(listeners, procs, until=ready, timeout_s=120, what="READY=1 of every daemon")
    settled = time.monotonic() + SETTLE_S
    _pump(listeners, procs, until=lambda: time.monotonic() >= settled, timeout_s=10,
          what="the settling second")  # fmt: skip
    rss = [rss_bytes(p.pid) for p in procs]
    latest = max(_ready_ms(x, wall_offset_s) for x in listeners)
    wake = candle_closes(latest, latest + TIMEFRAME_MS, timeframe_ms=TIMEFRAME_MS)[0]
    wake += CANDLE_GRACE_MS
    log(
        f"ticks: {len(procs)} daemons READY; next close's wake in {wake / 1000 - time.time():.0f} s"
    )

    def past_close() -> bool:
        return all(
            sum(1 for end in _tick_ends_ms(x, wall_offset_s) if end > wake) >= TICKS_AFTER_CLOSE
            for x in listeners
        )

    _pump(listeners, procs, until=past_close, timeout_s=TIMEFRAME_MS / 1000 + 90,
          what=f"{TICKS_AFTER_CLOSE} ticks after the candle close")  # fmt: skip
    return rss


def _ready_ms(listener: NotifyListener, wall_offset_s: float) -> int:
    index = _ready_index(listener)
    assert index is not None
    return int((listener.messages[index][0] + wall_offset_s) * 1000)


@dataclass(frozen=True, slots=True)
class IdleDaemon:
    cpu_s_per_h: float
    rss: int  # bytes, SETTLE_S after READY=1 (1 symbol)


def idle_round(
    trees: Sequence[Tree], directory: Path, sim: SimProcess, *, per_side: int, window_s: float
) -> dict[str, list[IdleDaemon]]:
    """``per_side`` 1-symbol daemons of each side with the production schedule (1h candles,
    the default re-sync interval, WATCHDOG=1 armed), started interleaved and measured side
    by side over one window of the real clock without a candle close."""
    order = [tree for _ in range(per_side) for tree in trees]
    instances = [
        Instance(directory, f"idle-{t.label}-{i}", SYMBOLS_1, sim, command=t.command, env=t.env)
        for i, t in enumerate(order)
    ]
    with side_by_side(instances) as (procs, listeners):
        time.sleep(SETTLE_S)
        rss = [rss_bytes(p.pid) for p in procs]
        log(f"idle: {len(procs)} daemons side by side, {window_s:g} s window of the real clock")
        per_hour = idle_window(procs, listeners, window_s=window_s)
        for instance, proc in zip(instances, procs, strict=True):
            if stop_process(proc) != 0:
                raise RuntimeError(f"{instance.name}: exit {proc.returncode}\n{instance.tail()}")
    result: dict[str, list[IdleDaemon]] = {t.label: [] for t in trees}
    for tree, cpu, size in zip(order, per_hour, rss, strict=True):
        result[tree.label].append(IdleDaemon(cpu, size))
    return result
