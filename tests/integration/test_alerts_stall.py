"""``watchdog.stall`` from the real paper daemon: its simulator is told to answer slowly, so
a tick hangs inside real ccxt for longer than half of WatchdogSec; the daemon's own
watcher thread (not the stalled loop) reports it once at a fake webhook."""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from alert_daemon import alert_config, events, start_alerting, stop_alerting
from alert_receivers import Receiver, serve
from conftest import DaemonFactory, NotifyListener, wait_until

WATCHDOG_USEC = 4_000_000  # WatchdogSec=4: the stall threshold is 2 s
DELAY_MS = 3_500  # each of two requests: the tick hangs about 7 s


@pytest.fixture
def webhook() -> Iterator[Receiver]:
    with serve(Receiver()) as receiver:
        yield receiver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sim_control(port: int, route: str, body: dict[str, object]) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{route}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200


def test_a_stalled_tick_is_one_watchdog_stall_alert(
    tmp_path: Path, daemon: DaemonFactory, notify_listener: NotifyListener, webhook: Receiver
) -> None:
    sim_port = _free_port()
    config = alert_config(tmp_path, webhook_port=webhook.port)
    config.write_text(config.read_text() + f"\n[paper]\nport = {sim_port}\n")
    handle = start_alerting(daemon, config, notify_listener, WATCHDOG_USEC=str(WATCHDOG_USEC))
    webhook.wait_for(lambda b: "daemon.ready" in events(b))
    ticks = len(notify_listener.messages())
    assert wait_until(lambda: len(notify_listener.messages()) > ticks + 10, timeout=30)
    assert "watchdog.stall" not in events(webhook.bodies())  # ticking normally: no alert

    _sim_control(sim_port, "/sim/faults", {"kind": "delay", "delay_ms": DELAY_MS, "times": 2})
    bodies = webhook.wait_for(lambda b: "watchdog.stall" in events(b), timeout=30)
    # the loop moves again (WATCHDOG=1 after the stall), and the stall is still one alert
    mark = len(notify_listener.messages())
    assert wait_until(
        lambda: sum(1 for m in notify_listener.messages()[mark:] if "WATCHDOG" in m.fields) > 5,
        timeout=30,
    )
    err = stop_alerting(handle)
    bodies = webhook.wait_for(lambda b: "daemon.stopped" in events(b))
    stalls = [b for b in bodies if b["event"] == "watchdog.stall"]
    assert len(stalls) == 1, events(bodies)
    assert stalls[0]["severity"] == "error"
    assert stalls[0]["fields"]["threshold_s"] == "2.0"
    assert float(stalls[0]["fields"]["stalled_s"]) > 2.0
    assert "watchdog.stall_over" in err
