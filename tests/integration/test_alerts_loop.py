"""Alerts about the loop of the real paper daemon, at a fake webhook: ``watchdog.stall``
when its simulator is told to answer slowly, so that a tick hangs inside real ccxt for
longer than half of WatchdogSec (the daemon's own watcher thread reports it once, not the
stalled loop); ``trendbotd halt`` and ``resume`` as one alert each way, with the reason
and no secret."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alert_daemon import (
    alert_config,
    assert_no_secret,
    events,
    free_port,
    sim_post,
    start_alerting,
    stop_alerting,
)
from alert_receivers import Receiver, serve
from support.daemon_cli import run_cli
from support.daemon_harness import DaemonFactory, NotifyListener, clean_env, wait_until

WATCHDOG_USEC = 4_000_000  # WatchdogSec=4: the stall threshold is 2 s
DELAY_MS = 3_500  # each of two requests: the tick hangs about 7 s


_ALICE = clean_env(SUDO_USER="alice")  # journalled as who


@pytest.fixture
def webhook() -> Iterator[Receiver]:
    with serve(Receiver()) as receiver:
        yield receiver


def test_a_stalled_tick_is_one_watchdog_stall_alert(
    tmp_path: Path, daemon: DaemonFactory, notify_listener: NotifyListener, webhook: Receiver
) -> None:
    sim_port = free_port()
    config = alert_config(tmp_path, webhook_port=webhook.port)
    config.write_text(config.read_text() + f"\n[paper]\nport = {sim_port}\n")
    handle = start_alerting(daemon, config, notify_listener, WATCHDOG_USEC=str(WATCHDOG_USEC))
    webhook.wait_for(lambda b: "daemon.ready" in events(b))
    ticks = len(notify_listener.messages())
    assert wait_until(lambda: len(notify_listener.messages()) > ticks + 10, timeout=30)
    assert "watchdog.stall" not in events(webhook.bodies())  # ticking normally: no alert

    sim_post(sim_port, "/sim/faults", {"kind": "delay", "delay_ms": DELAY_MS, "times": 2})
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


def test_halt_and_resume_are_one_alert_each(
    tmp_path: Path, daemon: DaemonFactory, notify_listener: NotifyListener, webhook: Receiver
) -> None:
    config = alert_config(tmp_path, webhook_port=webhook.port)
    handle = start_alerting(daemon, config, notify_listener)
    webhook.wait_for(lambda b: "daemon.ready" in events(b))

    halted = run_cli(
        tmp_path, "halt", "--config", str(config), "--reason", "x", env=_ALICE, timeout=120
    )
    assert halted.returncode == 0, halted.stderr
    bodies = webhook.wait_for(lambda b: "mode.halted_entered" in events(b))
    resumed = run_cli(tmp_path, "resume", "--config", str(config), env=_ALICE, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    webhook.wait_for(lambda b: "mode.halted_left" in events(b))
    err = stop_alerting(handle)
    bodies = webhook.wait_for(lambda b: "daemon.stopped" in events(b))

    assert events(bodies) == [
        "daemon.started",
        "daemon.ready",
        "mode.halted_entered",
        "mode.halted_left",
        "daemon.stopped",
    ]
    entered = bodies[2]
    assert entered["severity"] == "error"
    assert "halted by alice: x" in entered["text"], entered
    assert bodies[3]["severity"] == "info"
    assert_no_secret(err, *(str(b) for b in bodies))
