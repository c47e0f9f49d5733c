"""The alert channel down for five minutes while the real paper daemon trades, then back:
every alert arrives once and in the order it was emitted, and the daemon's decision
latency (candle close to order, measured as bench/bench_latency.py does) and its
WATCHDOG=1 cadence during the outage are printed next to the same figures before it.

``TRENDBOTD_OUTAGE_S`` shortens the outage for a local run (default 300 s)."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from statistics import median

import pytest
from alert_daemon import alert_config, free_port, sim_get
from alert_receivers import Receiver, serve
from support.daemon_harness import REAL_CMD, REPO, NotifyListener, clean_env, wait_until

if str(REPO) not in sys.path:  # bench/ is a top-level package of the checkout, not installed
    sys.path.insert(0, str(REPO))

from bench.bench_latency import STRATEGY_TOML, join_samples

OUTAGE_S = float(os.environ.get("TRENDBOTD_OUTAGE_S", "300"))
BEFORE_S = float(
    os.environ.get("TRENDBOTD_BEFORE_S", "60")
)  # healthy trading first: the figures to compare with
SPEED = 60.0  # one 1m candle per real second
WATCHDOG_USEC = 4_000_000  # WatchdogSec=4: the loop pings at least every 2 s
EMITTED = re.compile(r"alert\.(\S+) severity=\S+ id=(\S+)")


@pytest.fixture
def webhook() -> Iterator[Receiver]:
    with serve(Receiver(fail_status=503)) as receiver:
        yield receiver


def _config(tmp_path: Path, webhook: Receiver, sim_port: int) -> Path:
    # every alert its own message, and a limit the backlog drains through in seconds
    config = alert_config(
        tmp_path,
        webhook_port=webhook.port,
        extra="rate_limit = 1000\nrate_window_s = 1\noutbox_max = 100000\n",
    )
    config.write_text(
        config.read_text()
        .replace("tick_interval_s = 0.2", "tick_interval_s = 1.0")
        .replace("paper = true\n", "paper = true\nmax_clock_offset_ms = 5000\n")
        + f'\n[paper]\nspeed = {SPEED}\nport = {sim_port}\nstart_balance = "1000000"\n'
        + '[trading]\nsymbols = ["BTC/USDT:USDT"]\ntimeframe = "1m"\n'
        + STRATEGY_TOML
    )
    return config


def _server_ms(sim_port: int) -> int:
    return int(sim_get(sim_port, "/fapi/v1/time")["serverTime"])


def _latency_ms(journal: Path, sim_port: int, *, since_ms: int) -> list[float]:
    """Close+grace -> order executed (real ms) of the candles closed after ``since_ms``
    whose orders the simulator has received by now."""
    requests = sim_get(sim_port, "/sim/requests")
    samples = join_samples(journal, requests, ready_ms=since_ms, speed=SPEED)
    return [s.total_ms for s in samples]


def _gaps(listener: NotifyListener, *, start: int, end: int) -> list[float]:
    pings = [m.at for m in listener.messages()[start:end] if m.fields.get("WATCHDOG")]
    return [b - a for a, b in itertools.pairwise(pings)]


def _summary(label: str, latencies: list[float], gaps: list[float]) -> str:
    lat = f"{median(latencies):.1f} ms p50, {max(latencies):.1f} ms max" if latencies else "-"
    return (
        f"{label}: {len(latencies)} orders, latency {lat}; "
        f"WATCHDOG=1 gaps max {max(gaps) * 1000:.0f} ms (n={len(gaps)})"
    )


@pytest.mark.slow  # a real five-minute outage by default
def test_channel_down_for_minutes_while_trading_then_back(
    tmp_path: Path, notify_listener: NotifyListener, webhook: Receiver
) -> None:
    sim_port = free_port()
    config = _config(tmp_path, webhook, sim_port)
    journal = tmp_path / "state" / "itest.db"
    log = tmp_path / "daemon.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*REAL_CMD, "run", "--foreground", "--paper", "--config", str(config)],
            cwd=tmp_path,
            env=clean_env(NOTIFY_SOCKET=notify_listener.path, WATCHDOG_USEC=str(WATCHDOG_USEC)),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        notify_listener.wait_key("READY", "1", timeout=120, proc=proc)
        ready_ms, ready_at = _server_ms(sim_port), len(notify_listener.messages())
        time.sleep(BEFORE_S)  # a span of trading to measure, not a wait for a condition
        before = _latency_ms(journal, sim_port, since_ms=ready_ms)
        down_ms, down_at = _server_ms(sim_port), len(notify_listener.messages())
        delivered_before = len(webhook.bodies())

        webhook.set_mode("fail")
        time.sleep(OUTAGE_S)  # the outage itself: a span of time, not a condition
        during = _latency_ms(journal, sim_port, since_ms=down_ms)  # candles closed since
        up_at = len(notify_listener.messages())
        attempts_down = webhook.attempts
        assert len(webhook.bodies()) == delivered_before  # nothing got through a 503
        webhook.set_mode("ok")

        def emitted() -> list[str]:
            return [m.group(2) for m in EMITTED.finditer(log.read_text(errors="replace"))]

        assert wait_until(
            lambda: [b["id"] for b in webhook.bodies()] == emitted() or proc.poll() is not None,
            timeout=120,
            interval=0.5,
        ), [
            (b["event"], b["id"], e)
            for b, e in zip(webhook.bodies(), emitted(), strict=False)
            if b["id"] != e
        ]
        assert proc.poll() is None, log.read_text()[-3000:]
        caught_up = len(webhook.bodies())  # the backlog, before the stop adds its alert
    finally:
        proc.terminate()
        proc.wait(timeout=60)

    bodies = webhook.bodies()
    ids = [b["id"] for b in bodies]
    assert len(ids) == len(set(ids))  # each once
    assert ids == emitted()[: len(ids)]  # in emit order
    assert [b["ids"] for b in bodies] == [[i] for i in ids]  # none coalesced away
    in_outage = caught_up - delivered_before
    events = sorted({b["event"] for b in bodies[delivered_before:caught_up]})
    print(
        f"\noutage {OUTAGE_S:g} s: {in_outage} alerts queued and delivered once, in order, "
        f"after {attempts_down} refused attempts; events {events}\n"
        + _summary("before", before, _gaps(notify_listener, start=ready_at, end=down_at))
        + "\n"
        + _summary("during", during, _gaps(notify_listener, start=down_at, end=up_at))
    )
    assert in_outage >= 10, events  # events did happen while the channel was down
    assert before and during
    # the watchdog never came near firing while the channel was down
    assert max(_gaps(notify_listener, start=down_at, end=up_at)) < WATCHDOG_USEC / 2e6
