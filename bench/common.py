"""Shared pieces of the benchmarks: statistics, process timing, RSS/CPU, the sd_notify
listener, the simulated exchange as its own process, and the result table."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.bench_startup import _env as clean_env

PYTHON = sys.executable
TRENDBOTD = str(Path(sys.executable).with_name("trendbotd"))
ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024

__all__ = [
    "MIB",
    "PYTHON",
    "ROOT",
    "TRENDBOTD",
    "NotifyListener",
    "Row",
    "SimProcess",
    "Target",
    "clean_env",
    "cpu_seconds",
    "median",
    "percentile",
    "render_table",
    "repeat",
    "rss_bytes",
    "stop_process",
    "thread_cpu_ns",
    "timed_run",
]


# --- statistics --------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("median of no values")
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[mid])
    return (ordered[mid - 1] + ordered[mid]) / 2.0


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between the closest ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {q} outside 0..100")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def repeat(fn: Callable[[], float], runs: int, *, warmup: int = 1) -> list[float]:
    """``runs`` results of ``fn`` after ``warmup`` discarded ones (page cache, .pyc)."""
    for _ in range(warmup):
        fn()
    return [fn() for _ in range(runs)]


# --- processes ---------------------------------------------------------------------------


def timed_run(
    argv: Sequence[str], *, expect: int, cwd: Path | None = None, env: dict[str, str] | None = None
) -> float:
    """Wall-clock seconds from spawn to exit of ``argv``; its exit code must be ``expect``."""
    started = time.perf_counter()
    result = subprocess.run(
        list(argv), cwd=cwd, env=env or clean_env(), capture_output=True, check=False
    )
    elapsed = time.perf_counter() - started
    if result.returncode != expect:
        raise RuntimeError(
            f"{' '.join(argv)}: exit {result.returncode}, expected {expect}: "
            f"{result.stderr.decode(errors='replace')[-2000:]}"
        )
    return elapsed


def rss_bytes(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process (all its threads, not its children) has used.
    Clock-tick resolution (10 ms): see ``thread_cpu_ns`` for short windows."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def thread_cpu_ns(pid: int) -> dict[int, int]:
    """Nanosecond CPU time of each live thread (/proc/PID/task/TID/schedstat, first field).
    Unlike utime/stime it has no 10 ms granularity; a thread that exits takes its time with
    it, so callers compare the thread ids of two readings."""
    result: dict[int, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            result[int(task.name)] = int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended between listing and reading
    return result


def stop_process(proc: subprocess.Popen[bytes], *, timeout_s: float = 30.0) -> int:
    """SIGTERM, wait; SIGKILL if it does not go. Returns the exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return int(proc.returncode)


class NotifyListener:
    """A NOTIFY_SOCKET of our own: records every sd_notify datagram with its arrival time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages: list[tuple[float, str]] = []  # (perf_counter, datagram text)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))

    def __enter__(self) -> NotifyListener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()
        self.path.unlink(missing_ok=True)

    def env(self, **extra: str) -> dict[str, str]:
        return clean_env(NOTIFY_SOCKET=str(self.path), **extra)

    def wait_for(
        self, assignment: str, proc: subprocess.Popen[bytes] | None, *, timeout_s: float = 120.0
    ) -> float:
        """perf_counter() at which a datagram holding the line ``assignment`` arrived."""
        for at, text in self.messages:
            if assignment in text.splitlines():
                return at
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = self.receive(timeout_s=0.1)
            if got is None:
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(f"process exited {proc.returncode} before {assignment}")
                continue
            if assignment in got.splitlines():
                return self.messages[-1][0]
        raise RuntimeError(f"no {assignment} within {timeout_s:g} s")

    def receive(self, *, timeout_s: float) -> str | None:
        """One datagram (recorded in ``messages``), or None when none came in time."""
        self._sock.settimeout(timeout_s)
        try:
            data = self._sock.recv(65536)
        except (BlockingIOError, TimeoutError):
            return None
        text = data.decode("utf-8", errors="replace")
        self.messages.append((time.perf_counter(), text))
        return text

    def fileno(self) -> int:
        """For select(): wait on several listeners at once."""
        return self._sock.fileno()

    def drain(self) -> None:
        """Read what has arrived without waiting (keeps the socket buffer from filling)."""
        while self.receive(timeout_s=0) is not None:
            pass


class SimProcess:
    """``trendbotd sim-exchange`` in its own process on 127.0.0.1, so that the daemon's
    CPU and memory figures never include the simulator's."""

    def __init__(
        self,
        directory: Path,
        *,
        symbols: Sequence[str],
        speed: float = 1.0,
        command: Sequence[str] = (TRENDBOTD,),
        env: dict[str, str] | None = None,
        extra_args: Sequence[str] = (),
        tag: str = "sim",
    ) -> None:
        """``command``: what runs ``trendbotd`` (another checkout: ``python -m trendbotd``
        with its PYTHONPATH in ``env``); ``tag`` names its credentials and log files."""
        self.credentials = directory / f"{tag}-credentials.toml"
        self.base_url = ""
        argv = [
            *command,
            "sim-exchange",
            "--port",
            "0",
            "--symbols",
            ",".join(symbols),
            "--credentials-out",
            str(self.credentials),
        ]
        if speed != 1.0:
            argv += ["--speed", str(speed)]
        argv += extra_args
        self._log = (directory / f"{tag}.log").open("wb")
        self.proc = subprocess.Popen(
            argv, env=clean_env(**(env or {})), stdout=subprocess.PIPE, stderr=self._log,
            cwd=directory,
        )  # fmt: skip

    def wait_ready(self, *, timeout_s: float = 30.0) -> None:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        while not self.base_url:
            line = self.proc.stdout.readline().decode()
            if not line:
                raise RuntimeError(f"sim-exchange exited {self.proc.wait()} before serving")
            if line.startswith("base_url "):
                self.base_url = line.split()[1]
            if time.monotonic() > deadline:
                raise RuntimeError("sim-exchange did not print its base_url in time")
        while not self.credentials.exists():  # written right before base_url; be sure
            time.sleep(0.01)

    def stop(self) -> None:
        stop_process(self.proc)
        self._log.close()

    def __enter__(self) -> SimProcess:
        """Serving (its base_url known); stopped on leaving, also when it never served."""
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def running_sim(
    directory: Path, *, symbols: Sequence[str], speed: float = 1.0
) -> Iterator[SimProcess]:
    with SimProcess(directory, symbols=symbols, speed=speed) as sim:
        yield sim


@contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=prefix, dir="/tmp") as tmp:
        yield Path(tmp)


# --- the table ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """``max_ratio``: value <= limit x baseline; ``max``: value < limit; ``min``: value >= limit."""

    kind: str
    limit: float
    text: str

    def met(self, value: float, baseline: float | None) -> bool:
        if self.kind == "max_ratio":
            return baseline is not None and baseline > 0 and value <= self.limit * baseline
        if self.kind == "max":
            return value < self.limit
        if self.kind == "min":
            return value >= self.limit
        raise ValueError(f"unknown target kind {self.kind!r}")


@dataclass(frozen=True, slots=True)
class Row:
    figure: str
    value: float | None  # None: could not be measured (the notes say why)
    unit: str  # "ms", "MiB", "s", "CPU-s/h", "candles/s"
    baseline_name: str = ""
    baseline: float | None = None
    target: Target | None = None
    runs: int = 0

    @property
    def ratio(self) -> float | None:
        if self.value is None or self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline

    @property
    def verdict(self) -> str:
        if self.target is None:
            return "-"
        if self.value is None:
            return "NOT MEASURED"
        return "met" if self.target.met(self.value, self.baseline) else "NOT MET"


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "candles/s":
        return f"{value:,.0f} {unit}"
    if abs(value) >= 100:
        return f"{value:.0f} {unit}"
    if abs(value) >= 10:
        return f"{value:.1f} {unit}"
    return f"{value:.2f} {unit}"


def render_table(rows: Sequence[Row]) -> str:
    header = ("figure", "n", "median", "baseline (same run)", "ratio", "target", "verdict")
    lines = [header]
    for row in rows:
        base = ""
        if row.baseline is not None:
            base = f"{row.baseline_name}: {format_value(row.baseline, row.unit)}"
        elif row.baseline_name:
            base = row.baseline_name
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "-"
        lines.append(
            (
                row.figure,
                str(row.runs) if row.runs else "-",
                format_value(row.value, row.unit),
                base or "none",
                ratio,
                row.target.text if row.target else "-",
                row.verdict,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]

    def fmt(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [fmt(lines[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [fmt(line) for line in lines[1:]]
    return "\n".join(out)


def ms(seconds: float) -> float:
    return seconds * 1000.0


def mib(n_bytes: float) -> float:
    return n_bytes / MIB


def log(message: str) -> None:
    """Progress on stderr, so that stdout holds only the table."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
