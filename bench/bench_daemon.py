"""The real daemon process against the simulated exchange running in another process.

Figures (each a median over ``runs`` launches, after one discarded warm-up launch):
  - launch to READY=1: spawn of ``trendbotd run --foreground`` to the READY=1 datagram on
    our NOTIFY_SOCKET (1 and 10 symbols), beside ``python -c pass`` and the minimal ccxt
    script (bench/minimal_ccxt.py: import ccxt, load the sim's markets, READY=1);
  - RSS one second after READY=1, beside the minimal script's RSS at the same moment;
  - SIGTERM to exit: from the signal to the process having exited (exit code 0 required);
  - duplicate launch to exit 75 while a real daemon holds the lock, beside ``python -c pass``;
  - CPU per hour while idle between 1h candles: user+system CPU time of several daemons
    started side by side, read over one idle window of the real clock and extrapolated
    linearly to an hour.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import (
    PYTHON,
    ROOT,
    TRENDBOTD,
    NotifyListener,
    Row,
    SimProcess,
    Target,
    cpu_seconds,
    log,
    median,
    mib,
    ms,
    rss_bytes,
    stop_process,
    thread_cpu_ns,
    timed_run,
)

SYMBOLS_10 = tuple(
    f"{base}/USDT:USDT"
    for base in ("BTC", "ETH", "BNB", "SOL", "XRP", "ADA", "DOGE", "AVAX", "LINK", "DOT")
)
SYMBOLS_1 = SYMBOLS_10[:1]
SETTLE_S = 1.0  # RSS is read this long after READY=1 (the first tick has run by then)
WATCHDOG_USEC = "30000000"  # WatchdogSec=30s, as in systemd/trendbotd.service
HOUR_S = 3600.0
# Processes of ~0.1 s are cheap to repeat and their medians are noisy at 5 runs.
CHEAP_RUNS_FACTOR = 4


@dataclass(frozen=True, slots=True)
class Launch:
    ready_s: float
    rss: int
    stop_s: float


@dataclass
class Instance:
    """One daemon configuration (own instance name, lock and journal) on the shared sim."""

    directory: Path
    name: str
    symbols: tuple[str, ...]
    sim: SimProcess
    tick_interval_s: float | None = None  # None: the product's default (service section)
    timeframe: str = "1h"
    extra_toml: str = ""
    command: tuple[str, ...] = (TRENDBOTD,)  # another checkout: python -m trendbotd
    env: dict[str, str] = field(default_factory=dict)  # e.g. that checkout's PYTHONPATH

    @property
    def config(self) -> Path:
        return self.directory / f"{self.name}.toml"

    @property
    def log_path(self) -> Path:
        return self.directory / f"{self.name}.log"

    def write(self) -> Path:
        symbols = ", ".join(f'"{s}"' for s in self.symbols)
        self.config.write_text(
            f'[instance]\nname = "{self.name}"\n'
            f'runtime_dir = "{self.directory / "run"}"\n'
            f'state_dir = "{self.directory / "state"}"\n'
            "[exchange]\npaper = false\n"
            f'base_url = "{self.sim.base_url}"\n'
            f'credentials_file = "{self.sim.credentials}"\n'
            f'[trading]\nsymbols = [{symbols}]\ntimeframe = "{self.timeframe}"\n'
            + (
                ""
                if self.tick_interval_s is None
                else f"[service]\ntick_interval_s = {self.tick_interval_s}\n"
            )
            + self.extra_toml
        )
        return self.config

    def spawn(self, listener: NotifyListener) -> subprocess.Popen[bytes]:
        with self.log_path.open("ab") as log_file:
            return subprocess.Popen(
                [*self.command, "run", "--foreground", "--config", str(self.config)],
                cwd=self.directory,
                env=listener.env(WATCHDOG_USEC=WATCHDOG_USEC, PYTHONUNBUFFERED="1", **self.env),
                stdout=subprocess.DEVNULL,
                stderr=log_file,
            )

    def tail(self, lines: int = 15) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def launch_once(instance: Instance, tag: str) -> Launch:
    """Spawn -> READY=1 -> RSS after SETTLE_S -> SIGTERM -> exit 0."""
    with NotifyListener(instance.directory / f"notify-{tag}") as listener:
        started = time.perf_counter()
        proc = instance.spawn(listener)
        try:
            try:
                ready_at = listener.wait_for("READY=1", proc, timeout_s=120)
            except RuntimeError as e:
                raise RuntimeError(f"{instance.name}: {e}\n{instance.tail()}") from None
            time.sleep(SETTLE_S)
            rss = rss_bytes(proc.pid)
            listener.drain()
            stop_sent = time.perf_counter()
            proc.terminate()
            code = proc.wait(timeout=30)
            stop_s = time.perf_counter() - stop_sent
        finally:
            stop_process(proc)
        if code != 0:
            raise RuntimeError(f"{instance.name}: SIGTERM gave exit {code}\n{instance.tail()}")
        return Launch(ready_at - started, rss, stop_s)


def minimal_ccxt_once(directory: Path, base_url: str, tag: str) -> tuple[float, int]:
    """The minimal ccxt script: (spawn to READY=1 seconds, RSS after SETTLE_S)."""
    with NotifyListener(directory / f"notify-min-{tag}") as listener:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [PYTHON, str(ROOT / "bench" / "minimal_ccxt.py"), base_url],
            cwd=directory,
            env=listener.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            ready_at = listener.wait_for("READY=1", proc, timeout_s=60)
            time.sleep(SETTLE_S)
            rss = rss_bytes(proc.pid)
        finally:
            code = stop_process(proc)
        if code != 0:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"minimal ccxt script exited {code}: {err[-2000:]}")
        return ready_at - started, rss


def launch_rows(directory: Path, sim: SimProcess, runs: int) -> list[Row]:
    """Launches interleaved (minimal script, 1-symbol daemon, 10-symbol daemon, then the
    next round) so that a change of machine load hits figure and baseline alike."""
    instances = [
        Instance(directory, f"launch{len(symbols)}", symbols, sim)
        for symbols in (SYMBOLS_1, SYMBOLS_10)
    ]
    for instance in instances:
        instance.write()
    minimal: list[tuple[float, int]] = []
    launches: list[list[Launch]] = [[] for _ in instances]
    log(f"launches: minimal ccxt script, daemon 1 symbol, daemon 10 symbols: {runs} + 1 warm-up")
    for i in range(runs + 1):
        got = minimal_ccxt_once(directory, sim.base_url, str(i))
        runs_now = [launch_once(instance, f"{instance.name}-{i}") for instance in instances]
        if i == 0:
            continue  # warm-up: page cache, .pyc, the journals' creation
        minimal.append(got)
        for kept, launch in zip(launches, runs_now, strict=True):
            kept.append(launch)
    min_ready = median([r for r, _ in minimal])
    min_rss = median([float(m) for _, m in minimal])
    log(f"  minimal ccxt script: READY {ms(min_ready):.0f} ms, RSS {mib(min_rss):.1f} MiB")
    cheap_runs = CHEAP_RUNS_FACTOR * runs
    floor, duplicate = _duplicate_launches(directory, sim, cheap_runs)
    ready_rows: list[Row] = []
    rss_rows: list[Row] = []
    stop_rows: list[Row] = []
    for instance, kept in zip(instances, launches, strict=True):
        n = len(instance.symbols)
        label = "1 symbol" if n == 1 else f"{n} symbols"
        ready = median([x.ready_s for x in kept])
        rss = median([float(x.rss) for x in kept])
        stop = median([x.stop_s for x in kept])
        log(
            f"  {label}: READY {ms(ready):.0f} ms, RSS {mib(rss):.1f} MiB, "
            f"SIGTERM {ms(stop):.0f} ms"
        )
        ready_rows.append(
            Row(
                f"launch to READY=1, {label}",
                ms(ready),
                "ms",
                baseline_name="minimal ccxt script",
                baseline=ms(min_ready),
                target=Target("max_ratio", 1.3, "<= 1.3x minimal ccxt") if n == 1 else None,
                runs=runs,
            )
        )
        rss_rows.append(
            Row(
                f"RSS {SETTLE_S:g} s after READY=1, {label}",
                mib(rss),
                "MiB",
                baseline_name="minimal ccxt script",
                baseline=mib(min_rss),
                target=Target("max_ratio", 1.2, "<= 1.2x minimal ccxt") if n == 10 else None,
                runs=runs,
            )
        )
        stop_rows.append(
            Row(
                f"SIGTERM to exit, {label}",
                ms(stop),
                "ms",
                target=Target("max", 1000.0, "< 1000 ms"),
                runs=runs,
            )
        )
    return [
        Row("python -c pass (interpreter floor)", ms(floor), "ms", runs=cheap_runs),
        Row(
            "minimal ccxt script to READY=1",
            ms(min_ready),
            "ms",
            baseline_name="python -c pass",
            baseline=ms(floor),
            runs=runs,
        ),
        *ready_rows,
        Row(
            "duplicate launch to exit 75",
            ms(duplicate),
            "ms",
            baseline_name="python -c pass",
            baseline=ms(floor),
            target=Target("max_ratio", 3.0, "<= 3x python -c pass"),
            runs=cheap_runs,
        ),
        *rss_rows,
        *stop_rows,
    ]


def _duplicate_launches(directory: Path, sim: SimProcess, runs: int) -> tuple[float, float]:
    """Medians of (``python -c pass``, a second ``trendbotd run`` of an instance that is
    READY in another process), interleaved."""
    instance = Instance(directory, "dup", SYMBOLS_1, sim)
    instance.write()
    argv = [TRENDBOTD, "run", "--foreground", "--config", str(instance.config)]
    floor: list[float] = []
    duplicate: list[float] = []
    with NotifyListener(directory / "notify-dup") as listener:
        proc = instance.spawn(listener)
        try:
            listener.wait_for("READY=1", proc, timeout_s=120)
            log(f"duplicate launches and python -c pass: {runs} + 1 warm-up")
            for i in range(runs + 1):
                f = timed_run([PYTHON, "-c", "pass"], expect=0, cwd=directory)
                d = timed_run(argv, expect=75, cwd=directory)
                if i:
                    floor.append(f)
                    duplicate.append(d)
        finally:
            stop_process(proc)
    return median(floor), median(duplicate)


@contextmanager
def side_by_side(
    instances: Sequence[Instance],
) -> Iterator[tuple[list[subprocess.Popen[bytes]], list[NotifyListener]]]:
    """Every instance spawned (each with its own NOTIFY_SOCKET), then each READY=1; all
    stopped and their sockets closed on leaving."""
    listeners: list[NotifyListener] = []
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for instance in instances:
            instance.write()
            listeners.append(NotifyListener(instance.directory / f"notify-{instance.name}"))
            procs.append(instance.spawn(listeners[-1]))
        for instance, listener, proc in zip(instances, listeners, procs, strict=True):
            try:
                listener.wait_for("READY=1", proc, timeout_s=120)
            except RuntimeError as e:
                raise RuntimeError(f"{instance.name}: {e}\n{instance.tail()}") from None
        yield procs, listeners
    finally:
        for proc in procs:
            stop_process(proc)
        for listener in listeners:
            listener.close()


def idle_cpu_row(directory: Path, sim: SimProcess, runs: int, *, window_s: float) -> Row:
    """``runs`` 1-symbol daemons side by side, each READY, then one idle window."""
    instances = [Instance(directory, f"idle{i}", SYMBOLS_1, sim) for i in range(runs)]
    with side_by_side(instances) as (procs, listeners):
        log(f"idle CPU: {runs} daemons, {window_s:g} s window of the real clock")
        per_hour = idle_window(procs, listeners, window_s=window_s)
    log("  CPU-s/h per daemon: " + ", ".join(f"{x:.2f}" for x in per_hour))
    return Row(
        f"idle CPU between 1h candles ({window_s:.0f} s real clock x {HOUR_S / window_s:.0f})",
        median(per_hour),
        "CPU-s/h",
        target=Target("max", 2.0, "< 2 CPU-s/h"),
        runs=runs,
    )


def idle_window(
    procs: Sequence[subprocess.Popen[bytes]],
    listeners: Sequence[NotifyListener],
    *,
    window_s: float,
    slice_s: float = 5.0,
    each_slice: Callable[[], None] | None = None,
) -> list[float]:
    """CPU-s/h of each READY daemon over one window of the real clock without a candle
    close (after the first tick's start-up work), multiplied up to one hour. ``each_slice``
    runs every ``slice_s`` (a scrape, say); a daemon that exits is an error."""
    _avoid_candle_close(window_s)
    time.sleep(5.0)  # the first tick after READY is start-up work, not idling
    before = [(cpu_seconds(p.pid), thread_cpu_ns(p.pid)) for p in procs]
    t0 = time.monotonic()
    end = t0 + window_s
    while time.monotonic() < end:
        if each_slice is not None:
            each_slice()
        for listener in listeners:
            listener.drain()  # WATCHDOG=1 every 15 s; keep the socket buffers empty
        time.sleep(min(slice_s, max(0.0, end - time.monotonic())))
    after = [(cpu_seconds(p.pid), thread_cpu_ns(p.pid)) for p in procs]
    elapsed = time.monotonic() - t0
    for proc in procs:
        if proc.poll() is not None:
            raise RuntimeError(f"a daemon exited {proc.returncode} during the idle window")
    return [_cpu_used(a, b) * HOUR_S / elapsed for a, b in zip(before, after, strict=True)]


def _cpu_used(before: tuple[float, dict[int, int]], after: tuple[float, dict[int, int]]) -> float:
    """Seconds of CPU between two readings: per-thread nanoseconds when the same threads
    lived through the window, else the process's 10 ms-granular utime + stime."""
    (ticks_a, threads_a), (ticks_b, threads_b) = before, after
    if threads_a.keys() == threads_b.keys():
        return sum(threads_b[t] - threads_a[t] for t in threads_a) / 1e9
    return ticks_b - ticks_a


def _avoid_candle_close(window_s: float) -> None:
    """Keep the idle window clear of the hourly candle close (that is work, not idling)."""
    into_hour = time.time() % HOUR_S
    needed = window_s + 20.0
    if HOUR_S - into_hour < needed:
        wait = HOUR_S - into_hour + 20.0
        log(f"idle CPU: waiting {wait:.0f} s for the hourly candle close to pass")
        time.sleep(wait)
