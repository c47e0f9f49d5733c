"""``trendbotd halt`` and ``resume`` while the real paper daemon runs: the operator's mode
change is one alert each way at a fake webhook, with the reason and no secret."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alert_daemon import alert_config, assert_no_secret, events, start_alerting, stop_alerting
from alert_receivers import Receiver, serve
from conftest import DaemonFactory, NotifyListener
from operator_cli import run_cli


@pytest.fixture
def webhook() -> Iterator[Receiver]:
    with serve(Receiver()) as receiver:
        yield receiver


def test_halt_and_resume_are_one_alert_each(
    tmp_path: Path, daemon: DaemonFactory, notify_listener: NotifyListener, webhook: Receiver
) -> None:
    config = alert_config(tmp_path, webhook_port=webhook.port)
    handle = start_alerting(daemon, config, notify_listener)
    webhook.wait_for(lambda b: "daemon.ready" in events(b))

    halted = run_cli(tmp_path, "halt", "--config", str(config), "--reason", "x")
    assert halted.returncode == 0, halted.stderr
    bodies = webhook.wait_for(lambda b: "mode.halted_entered" in events(b))
    resumed = run_cli(tmp_path, "resume", "--config", str(config))
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
