"""How fast the daemon refuses a duplicate, and how long a clean start takes to READY=1.

    python bench/bench_startup.py [--runs N]

Prints medians over N runs (default 7) of:
  - ``python -c pass`` (the interpreter's floor on this machine),
  - ``python -c "import ccxt"`` (what the lock saves a duplicate from),
  - a duplicate ``trendbotd run`` to exit 75 while this script holds the lock, run round
    by round with the floor (after one warm-up round) and shown as a multiple of it,
  - a clean ``trendbotd run --paper --foreground`` to READY=1 on a test NOTIFY_SOCKET
    (the built-in simulated exchange, real startup sync), then SIGTERM to exit.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from trendbotd.service.pidlock import PidLock

PYTHON = sys.executable
DAEMON = [PYTHON, "-m", "trendbotd"]
ROOT = Path(__file__).resolve().parents[1]


def _env(**extra: str) -> dict[str, str]:
    drop = {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM", "INVOCATION_ID"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(extra)
    return env


def _timed(argv: list[str], *, expect: int, cwd: Path) -> float:
    started = time.perf_counter()
    result = subprocess.run(argv, cwd=cwd, env=_env(), capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != expect:
        raise SystemExit(f"{argv}: exit {result.returncode}, expected {expect}: {result.stderr!r}")
    return elapsed


def _config(directory: Path) -> Path:
    path = directory / "bench.toml"
    path.write_text(
        f'[instance]\nname = "bench"\nruntime_dir = "{directory / "run"}"\n'
        f'state_dir = "{directory / "state"}"\n'
        "[exchange]\npaper = true\n[service]\ntick_interval_s = 1.0\n"
    )
    return path


def _await_ready(sock: socket.socket, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if b"READY=1" in sock.recv(65536):
                return
        except TimeoutError:
            if proc.poll() is not None:
                raise SystemExit(f"the daemon exited {proc.returncode} before READY=1") from None
    raise SystemExit("no READY=1 within 120 s")


def _start_to_ready(config: Path, cwd: Path, sock_path: str) -> tuple[float, float]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(0.2)
    try:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [*DAEMON, "run", "--paper", "--foreground", "--config", str(config)],
            cwd=cwd,
            env=_env(NOTIFY_SOCKET=sock_path),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _await_ready(sock, proc)
            ready = time.perf_counter() - started
            stop_sent = time.perf_counter()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
            stopped = time.perf_counter() - stop_sent
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if code != 0:
            raise SystemExit(f"clean stop exited {code}")
        return ready, stopped
    finally:
        sock.close()
        os.unlink(sock_path)


def _ms(values: list[float]) -> str:
    median, low = statistics.median(values) * 1000, min(values) * 1000
    return f"{median:8.1f} ms  (min {low:.1f}, n={len(values)})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    runs = max(5, parser.parse_args().runs)
    with tempfile.TemporaryDirectory(prefix="tbd-bench-", dir="/tmp") as tmp:
        directory = Path(tmp)
        config = _config(directory)
        ccxt = [_timed([PYTHON, "-c", "import ccxt"], expect=0, cwd=directory) for _ in range(runs)]
        (directory / "run").mkdir()
        holder = PidLock(directory / "run" / "bench.pid")
        holder.acquire()
        floor: list[float] = []
        duplicate: list[float] = []
        try:
            dup_argv = [*DAEMON, "run", "--paper", "--foreground", "--config", str(config)]
            # Interleaved, so that load from elsewhere on the machine hits both alike.
            for i in range(runs + 1):
                f = _timed([PYTHON, "-c", "pass"], expect=0, cwd=directory)
                d = _timed(dup_argv, expect=75, cwd=directory)
                if i:  # the first round warms the page cache
                    floor.append(f)
                    duplicate.append(d)
        finally:
            holder.release()
        ready: list[float] = []
        stop: list[float] = []
        for i in range(runs):
            r, s = _start_to_ready(config, directory, str(directory / f"n{i}"))
            ready.append(r)
            stop.append(s)
    print(f"python -c pass                    {_ms(floor)}")
    print(f"python -c 'import ccxt'           {_ms(ccxt)}")
    ratio = statistics.median(duplicate) / statistics.median(floor)
    print(f"duplicate run -> exit 75          {_ms(duplicate)}  = {ratio:.2f}x python -c pass")
    print(f"clean start -> READY=1 (paper)    {_ms(ready)}")
    print(f"SIGTERM -> exit 0                 {_ms(stop)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
