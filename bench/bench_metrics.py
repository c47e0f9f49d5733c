"""What ``[metrics] listen`` costs: the same 1-symbol daemon with metrics off and on.

Figures (medians over ``runs``; off and on interleaved or side by side, so a change of
machine load hits both alike):
  - RSS one second after READY=1 and three scrapes of /metrics (the on daemons'
    scrape path has run: prometheus_client loaded, the journal read);
  - CPU per hour while idle between 1h candles, the on daemons scraped every 15 s as a
    Prometheus server would, over one window of the real clock extrapolated to an hour.
Targets (issue 13): at most +5 MiB and +0.5 CPU-s/h over metrics off.
"""

from __future__ import annotations

import socket
import time
import urllib.request
from pathlib import Path

from bench.bench_daemon import SETTLE_S, SYMBOLS_1, Instance, idle_window, side_by_side
from bench.common import (
    NotifyListener,
    Row,
    SimProcess,
    Target,
    log,
    median,
    mib,
    rss_bytes,
    stop_process,
)

SCRAPE_INTERVAL_S = 15.0  # Prometheus' default scrape_interval is 1m; 15s is the common choice
RSS_LIMIT_MIB = 5.0
CPU_LIMIT_S_PER_H = 0.5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _instance(directory: Path, sim: SimProcess, name: str, *, metrics: bool) -> Instance:
    extra = f'[metrics]\nlisten = "127.0.0.1:{_free_port()}"\n' if metrics else ""
    instance = Instance(directory, name, SYMBOLS_1, sim, extra_toml=extra)
    instance.write()
    return instance


def _scrape(instance: Instance) -> None:
    listen = instance.extra_toml.split('"')[1] if instance.extra_toml else ""
    if not listen:
        return
    with urllib.request.urlopen(f"http://{listen}/metrics", timeout=5) as reply:
        if b"trendbotd_ready 1.0" not in reply.read():
            raise RuntimeError(f"{instance.name}: /metrics does not say ready")


def _rss_once(instance: Instance, tag: str) -> int:
    with NotifyListener(instance.directory / f"notify-{tag}") as listener:
        proc = instance.spawn(listener)
        try:
            listener.wait_for("READY=1", proc, timeout_s=120)
            for _ in range(3):
                _scrape(instance)
            time.sleep(SETTLE_S)
            rss = rss_bytes(proc.pid)
        finally:
            code = stop_process(proc)
        if code != 0:
            raise RuntimeError(f"{instance.name}: SIGTERM gave exit {code}\n{instance.tail()}")
        return rss


def _idle_cpu(
    directory: Path, sim: SimProcess, runs: int, *, window_s: float
) -> tuple[list[float], list[float]]:
    """CPU-s/h of ``runs`` daemons off and ``runs`` on, all side by side."""
    instances = [
        _instance(directory, sim, f"midle{i}-{'on' if on else 'off'}", metrics=on)
        for i in range(runs)
        for on in (False, True)
    ]
    with side_by_side(instances) as (procs, listeners):
        log(f"metrics idle CPU: {len(procs)} daemons, {window_s:g} s window")

        def scrape_all() -> None:
            for instance in instances:
                _scrape(instance)

        per_hour = idle_window(
            procs, listeners, window_s=window_s, slice_s=SCRAPE_INTERVAL_S, each_slice=scrape_all
        )
    return per_hour[0::2], per_hour[1::2]


def metrics_rows(directory: Path, sim: SimProcess, runs: int, *, window_s: float) -> list[Row]:
    off = _instance(directory, sim, "moff", metrics=False)
    on = _instance(directory, sim, "mon", metrics=True)
    log(f"metrics RSS: daemon with metrics off and on, {runs} + 1 warm-up")
    rss_off: list[float] = []
    rss_on: list[float] = []
    for i in range(runs + 1):
        got = (_rss_once(off, f"moff-{i}"), _rss_once(on, f"mon-{i}"))
        if i:
            rss_off.append(mib(got[0]))
            rss_on.append(mib(got[1]))
    log(f"  RSS off {median(rss_off):.1f} MiB, on {median(rss_on):.1f} MiB")
    cpu_off, cpu_on = _idle_cpu(directory, sim, runs, window_s=window_s)
    log(f"  idle CPU-s/h off {median(cpu_off):.2f}, on {median(cpu_on):.2f}")
    return [
        Row(
            "RSS, metrics on and scraped (1 symbol)",
            median(rss_on),
            "MiB",
            baseline_name="metrics off",
            baseline=median(rss_off),
            target=Target("max", median(rss_off) + RSS_LIMIT_MIB, f"<= off + {RSS_LIMIT_MIB:g}"),
            runs=runs,
        ),
        Row(
            f"idle CPU, metrics on, scraped every {SCRAPE_INTERVAL_S:g} s",
            median(cpu_on),
            "CPU-s/h",
            baseline_name="metrics off",
            baseline=median(cpu_off),
            target=Target(
                "max", median(cpu_off) + CPU_LIMIT_S_PER_H, f"<= off + {CPU_LIMIT_S_PER_H:g}"
            ),
            runs=runs,
        ),
    ]
