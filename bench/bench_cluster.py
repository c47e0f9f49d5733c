"""The etcd leader lease: renewal CPU cost and kill -9 failover time, on a real etcd.

    .venv/bin/python -m bench.bench_cluster [--window S] [--failover-ttl S]

Starts a one-member etcd (Debian's etcd-server) on free 127.0.0.1 ports, then election
processes running ``trendbotd.cluster.election`` alone: a leader and a standby at the
default timings (TTL 30 s, renew 5 s) for ``--window`` seconds, their CPU time scaled to an
hour; then a leader killed with SIGKILL at a short TTL and the time until a standby leads,
from the leader's last renewal sent (it cannot be less than the TTL).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.common import Row, Target, log, render_table, scratch_dir, stop_process, thread_cpu_ns


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@contextmanager
def _etcd(directory: Path) -> Iterator[str]:
    binary = shutil.which("etcd")
    if binary is None:
        raise SystemExit("etcd is not installed (packaging/install-build-deps.sh installs it)")
    client, peer = (f"http://127.0.0.1:{p}" for p in _free_ports(2))
    args = [
        binary, "--name", "b1", "--data-dir", str(directory / "etcd"),
        "--listen-client-urls", client, "--advertise-client-urls", client,
        "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
        "--initial-cluster", f"b1={peer}", "--log-level", "warn",
    ]  # fmt: skip
    with (directory / "etcd.log").open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(client + "/health", timeout=1) as answer:
                    if json.load(answer).get("health") == "true":
                        break
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        else:
            raise SystemExit("etcd did not become healthy in 30 s")
        yield client
    finally:
        stop_process(proc)  # type: ignore[arg-type]


def _child(argv: list[str]) -> None:
    from trendbotd.adapters.etcd_gateway import EtcdGateway
    from trendbotd.cluster.election import Election
    from trendbotd.cluster.fencing import Timing
    from trendbotd.cluster.states import ElectionState

    endpoint, key, node, ttl, renew = argv[0], argv[1], argv[2], float(argv[3]), float(argv[4])
    if ttl >= 30:  # the defaults: rpc 2 s, recvWindow 3 s, clock bound 0.5 s, slack 2.5 s
        timing = Timing(ttl, renew, 2.0, recv_window_ms=3000, clock_bound_ms=500, slack_s=2.5)
    else:  # the integration tests' short lease
        timing = Timing(ttl, renew, ttl / 5, recv_window_ms=1000, clock_bound_ms=100, slack_s=0.4)

    def changed(_old: ElectionState, new: ElectionState) -> None:
        wall = time.time() - (time.monotonic() - (new.renew_sent_at or time.monotonic()))
        sys.stdout.write(f"{new.role.value} {time.time():.3f} {wall:.3f}\n")
        sys.stdout.flush()

    election = Election(
        EtcdGateway([endpoint], timeout_s=timing.rpc_timeout_s),
        key=key,
        node=node,
        timing=timing,
        poll_s=min(renew, 1.0),  # as the daemon's standby does
        listener=changed,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    election.run(stop)


def _spawn(endpoint: str, key: str, node: str, ttl: float, renew: float) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "bench.bench_cluster", "--child", endpoint, key, node]
    return subprocess.Popen([*args, str(ttl), str(renew)], stdout=subprocess.PIPE, text=True)


def _lines(proc: subprocess.Popen[str], into: list[list[str]]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        into.append(line.split())


def _wait(predicate: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise SystemExit("timed out waiting for the election")


def _cpu_per_hour(endpoint: str, window: float) -> tuple[float, float]:
    leader_out: list[list[str]] = []
    standby_out: list[list[str]] = []
    leader = _spawn(endpoint, "/bench/cpu", "leader", 30, 5)
    threading.Thread(target=_lines, args=(leader, leader_out), daemon=True).start()
    _wait(lambda: any(x[0] == "leader" for x in leader_out), 20)
    standby = _spawn(endpoint, "/bench/cpu", "standby", 30, 5)
    threading.Thread(target=_lines, args=(standby, standby_out), daemon=True).start()
    _wait(lambda: standby_out != [], 20)  # it has seen the leader: imports are done
    time.sleep(1)
    before = [sum(thread_cpu_ns(p.pid).values()) for p in (leader, standby)]
    time.sleep(window)
    after = [sum(thread_cpu_ns(p.pid).values()) for p in (leader, standby)]
    for p in (leader, standby):
        stop_process(p)  # type: ignore[arg-type]
    per_hour = [(a - b) / 1e9 * 3600 / window for a, b in zip(after, before, strict=True)]
    return per_hour[0], per_hour[1]


def _failover(endpoint: str, ttl: float) -> float:
    out_a: list[list[str]] = []
    out_b: list[list[str]] = []
    a = _spawn(endpoint, "/bench/failover", "a", ttl, ttl / 8)
    threading.Thread(target=_lines, args=(a, out_a), daemon=True).start()
    _wait(lambda: sum(x[0] == "leader" for x in out_a) >= 3, 20)  # leading and renewing
    b = _spawn(endpoint, "/bench/failover", "b", ttl, ttl / 8)
    threading.Thread(target=_lines, args=(b, out_b), daemon=True).start()
    _wait(lambda: out_b != [], 20)
    time.sleep(ttl / 4)
    a.kill()
    a.wait()
    last_renewal = max(float(x[2]) for x in out_a if x[0] == "leader")
    _wait(lambda: any(x[0] == "leader" for x in out_b), ttl + 20)
    took_over = next(float(x[1]) for x in out_b if x[0] == "leader")
    stop_process(b)  # type: ignore[arg-type]
    return took_over - last_renewal


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        _child(argv[1:])
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.bench_cluster")
    parser.add_argument("--window", type=float, default=60.0, help="seconds of CPU measurement")
    parser.add_argument("--failover-ttl", type=float, default=4.0, help="lease TTL, seconds")
    parser.add_argument("--runs", type=int, default=3, help="kill -9 failovers to time")
    args = parser.parse_args(argv)
    with scratch_dir("trendbotd-bench-cluster-") as tmp, _etcd(tmp) as endpoint:
        log(f"cluster: CPU of a leader and a standby over {args.window:g} s")
        leader_cpu, standby_cpu = _cpu_per_hour(endpoint, args.window)
        times = []
        for run in range(args.runs):
            log(f"cluster: kill -9 failover {run + 1}/{args.runs} (ttl {args.failover_ttl:g} s)")
            times.append(_failover(endpoint, args.failover_ttl))
    ttl = args.failover_ttl
    rows = [
        Row("election CPU, leader (ttl 30 s, renew 5 s)", leader_cpu, "CPU-s/h",
            target=Target("max", 10, "< 10 CPU-s/h"), runs=1),
        Row("election CPU, standby (polls every 1 s)", standby_cpu, "CPU-s/h",
            target=Target("max", 10, "< 10 CPU-s/h"), runs=1),
        Row(f"kill -9 failover from last renewal (ttl {ttl:g} s), max", max(times), "s",
            target=Target("min", ttl, f">= ttl {ttl:g} s"), runs=len(times)),
        Row(f"kill -9 failover from last renewal (ttl {ttl:g} s), min", min(times), "s",
            target=Target("min", ttl, f">= ttl {ttl:g} s"), runs=len(times)),
    ]  # fmt: skip
    print(render_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
