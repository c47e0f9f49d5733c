"""Alerts from the real daemon process to local fake receivers (a JSON webhook and a
Telegram Bot API) on 127.0.0.1: lifecycle alerts arrive once with the right severity and
no secret; a channel that is down, then back, gets every alert once and in order; a
SIGKILLed daemon reports its unclean exit once, and the alert unit does not repeat it."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alert_daemon import (
    BOT_TOKEN,
    alert_config,
    assert_no_secret,
    events,
    start_alerting,
    stop_alerting,
)
from alert_receivers import Receiver, TelegramReceiver, serve
from support.daemon_harness import (
    DaemonFactory,
    NotifyListener,
    clean_env,
    wait_until,
    write_config,
)


@pytest.fixture
def webhook() -> Iterator[Receiver]:
    with serve(Receiver()) as receiver:
        yield receiver


@pytest.fixture
def telegram() -> Iterator[TelegramReceiver]:
    with serve(TelegramReceiver(token=BOT_TOKEN)) as receiver:
        yield receiver


def test_lifecycle_alerts_arrive_once_with_severity_and_no_secret(
    tmp_path: Path,
    daemon: DaemonFactory,
    notify_listener: NotifyListener,
    webhook: Receiver,
    telegram: TelegramReceiver,
) -> None:
    config = alert_config(tmp_path, webhook_port=webhook.port, telegram_port=telegram.port)
    handle = start_alerting(daemon, config, notify_listener)
    webhook.wait_for(lambda b: events(b) == ["daemon.started", "daemon.ready"])
    err = stop_alerting(handle)
    bodies = webhook.wait_for(lambda b: len(b) >= 3)
    assert events(bodies) == ["daemon.started", "daemon.ready", "daemon.stopped"]
    assert [b["severity"] for b in bodies] == ["info", "info", "info"]
    assert bodies[2]["fields"]["exit_code"] == "0"
    assert all(b["instance"] == "itest" and b["count"] == 1 for b in bodies)
    assert len({b["id"] for b in bodies}) == 3
    texts = telegram.wait_for(lambda b: len(b) >= 3)
    assert len(texts) == 3
    assert all(t["chat_id"] == "-100200300" for t in texts)
    assert texts[0]["text"].startswith("INFO itest: daemon started")
    assert "daemon.stopped" in texts[2]["text"]
    # nothing more arrives: each alert once
    assert webhook.attempts == 3 and telegram.attempts == 3
    raw = b"".join(r.raw for r in webhook.received + telegram.received).decode()
    outbox = (tmp_path / "state" / "itest.alerts.db").read_bytes().decode("latin-1")
    assert_no_secret(raw, err, outbox)
    assert "alert.daemon.started" in err


def test_channel_down_then_back_delivers_everything_once_in_order(
    tmp_path: Path, daemon: DaemonFactory, notify_listener: NotifyListener
) -> None:
    # down (HTTP 500) for a whole run, then absent (connection refused) for the start of
    # the next, then back on the same port
    failing = Receiver(mode="fail")
    with serve(failing):
        port = failing.port
        config = alert_config(tmp_path, webhook_port=port)
        first = start_alerting(daemon, config, notify_listener)
        err = stop_alerting(first)
        assert failing.attempts >= 3  # retried while down
        assert failing.received == []
        assert "alert.delivery_failed channel=hook" in err and "HTTP 500" in err
        assert "alert.unsent channel=hook pending=3" in err
    second = start_alerting(daemon, config, notify_listener)
    with serve(Receiver(), port=port) as back:
        bodies = back.wait_for(lambda b: len(b) >= 5)
        err = stop_alerting(second)
        bodies = back.wait_for(lambda b: len(b) >= 6)
    assert events(bodies) == [
        "daemon.started",
        "daemon.ready",
        "daemon.stopped",
        "daemon.started",
        "daemon.ready",
        "daemon.stopped",
    ]
    assert len({b["id"] for b in bodies}) == 6
    assert [b["created_ms"] for b in bodies] == sorted(b["created_ms"] for b in bodies)
    assert_no_secret(err)


def test_sigkill_then_restart_reports_the_unclean_exit_once(
    tmp_path: Path, daemon: DaemonFactory, notify_listener: NotifyListener, webhook: Receiver
) -> None:
    config = alert_config(tmp_path, webhook_port=webhook.port)
    first = start_alerting(daemon, config, notify_listener, INVOCATION_ID="0123abcdfirstrun")
    webhook.wait_for(lambda b: "daemon.ready" in events(b))
    # kill after the bookkeeping of the send: a kill between send and bookkeeping repeats
    # the alert, by design (at least once, with a stable id)
    outbox = tmp_path / "state" / "itest.alerts.db"
    assert wait_until(lambda: _pending(outbox) == 0, timeout=10)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    second = start_alerting(daemon, config, notify_listener, INVOCATION_ID="4567efsecondrun")
    bodies = webhook.wait_for(lambda b: events(b).count("daemon.ready") == 2)
    # the alert unit, started by OnFailure= for the same crash, reports nothing new
    fakes = _fake_systemd_tools(tmp_path)
    alert = daemon.run(
        ["alert", "--unit", "trendbotd.service", "--config", str(config), "--timeout", "10"],
        env=clean_env(
            PATH=f"{fakes}:{os.environ['PATH']}",
            MONITOR_INVOCATION_ID="0123abcdfirstrun",
            MONITOR_SERVICE_RESULT="signal",
            MONITOR_EXIT_CODE="killed",
            MONITOR_EXIT_STATUS="KILL",
        ),
    )
    assert alert.returncode == 0, alert.stderr
    assert "alert.duplicate event=unit.failed" in alert.stderr
    stop_alerting(second)
    bodies = webhook.wait_for(lambda b: "daemon.stopped" in events(b))
    assert events(bodies) == [  # the restart is reported before the new start
        "daemon.started",
        "daemon.ready",
        "daemon.restarted_unclean",
        "daemon.started",
        "daemon.ready",
        "daemon.stopped",
    ], events(bodies)
    unclean = bodies[2]
    assert unclean["severity"] == "critical"
    assert unclean["id"] == "failed-run-0123abcdfirstrun"
    assert unclean["fields"]["previous_pid"] == str(first.pid)


def _pending(outbox: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{outbox}?mode=ro", uri=True)) as conn:
        return int(
            conn.execute("SELECT COUNT(*) FROM deliveries WHERE state = 'pending'").fetchone()[0]
        )


def _fake_systemd_tools(tmp_path: Path) -> Path:
    """``systemctl show`` and ``journalctl`` answering like systemd would for a failed unit."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scripts = {
        "systemctl": "printf 'Result=exit-code\\nExecMainCode=1\\nExecMainStatus=78\\n"
        "InvocationID=feedc0de0078\\nNRestarts=0\\n'",
        "journalctl": "printf 'trendbotd: config invalid: risk.max_leverage must be 1..125\\n'",
    }
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
    return bin_dir


def test_alert_unit_reports_a_unit_that_failed_for_good(
    tmp_path: Path, daemon: DaemonFactory, webhook: Receiver, telegram: TelegramReceiver
) -> None:
    # exit 78: the daemon never got far enough to report; the alert unit does, even though
    # the config it shares is invalid outside [instance] and [alerts]
    config = alert_config(tmp_path, webhook_port=webhook.port, telegram_port=telegram.port)
    config.write_text(config.read_text() + "\n[risk]\nmax_leverage = 500\n")
    fakes = _fake_systemd_tools(tmp_path)
    env = clean_env(PATH=f"{fakes}:{os.environ['PATH']}")
    args = ["alert", "--unit", "trendbotd.service", "--config", str(config)]
    done = daemon.run(args, env=env)
    assert done.returncode == 0, done.stderr
    (body,) = webhook.wait_for(lambda b: len(b) >= 1)
    assert body["event"] == "unit.failed"
    assert body["severity"] == "critical"
    assert body["id"] == "failed-run-feedc0de0078"
    assert body["fields"]["result"] == "exit-code"
    assert body["fields"]["exit"] == "exited/78"
    assert "max_leverage must be 1..125" in body["text"]
    (message,) = telegram.wait_for(lambda b: len(b) >= 1)
    assert message["text"].startswith("CRITICAL itest: unit failed")
    # a second run for the same failure sends nothing new
    again = daemon.run(args, env=env)
    assert again.returncode == 0
    assert webhook.attempts == 1 and telegram.attempts == 1
    assert_no_secret(done.stderr, again.stderr)


def test_alert_test_and_exit_codes(
    tmp_path: Path, daemon: DaemonFactory, webhook: Receiver
) -> None:
    config = alert_config(tmp_path, webhook_port=webhook.port)
    done = daemon.run(["alert", "--test", "--config", str(config)])
    assert done.returncode == 0, done.stderr
    assert events(webhook.wait_for(lambda b: len(b) >= 1)) == ["alert.test"]
    assert daemon.run(["alert", "--config", str(config)]).returncode == 64
    webhook.set_mode("fail")
    down = daemon.run(["alert", "--test", "--config", str(config), "--timeout", "1"])
    assert down.returncode == 69, down.stderr
    assert "hook (1 pending)" in down.stderr
    if os.geteuid() == 0:  # root would take the outbox from the daemon's user: refused
        os.chown(tmp_path / "state", 4242, -1)
        foreign = daemon.run(["alert", "--test", "--config", str(config)])
        assert foreign.returncode == 73, foreign.stderr
        assert "sudo -u trendbotd" in foreign.stderr
        os.chown(tmp_path / "state", 0, -1)
    (tmp_path / "hook.secret").chmod(0o644)
    unsafe = daemon.run(["alert", "--test", "--config", str(config)])
    assert unsafe.returncode == 77, unsafe.stderr
    (tmp_path / "none").mkdir()
    plain = write_config(tmp_path / "none")
    assert daemon.run(["alert", "--test", "--config", str(plain)]).returncode == 78


def test_a_failed_start_is_one_alert_even_with_the_alert_unit(
    tmp_path: Path, daemon: DaemonFactory, webhook: Receiver
) -> None:
    # the startup sync cannot finish in time: exit 69, reported by the daemon itself; the
    # alert unit then started by OnFailure= for that run adds nothing
    config = alert_config(tmp_path, webhook_port=webhook.port)
    text = config.read_text().replace("startup_timeout_s = 60", "startup_timeout_s = 5")
    config.write_text(text + "\n[paper]\nresponse_delay_ms = 2000\n")
    handle = daemon.start(
        ["run", "--foreground", "--paper", "--config", str(config)],
        env=clean_env(INVOCATION_ID="69failedstart"),
    )
    assert handle.wait(timeout=60) == 69
    bodies = webhook.wait_for(lambda b: len(b) >= 2)
    assert events(bodies) == ["daemon.started", "daemon.failed"]
    assert bodies[1]["severity"] == "error"
    assert bodies[1]["fields"]["exit_code"] == "69"
    assert bodies[1]["id"] == "failed-run-69failedstart"
    fakes = _fake_systemd_tools(tmp_path)
    alert = daemon.run(
        ["alert", "--unit", "trendbotd.service", "--config", str(config)],
        env=clean_env(PATH=f"{fakes}:{os.environ['PATH']}", MONITOR_INVOCATION_ID="69failedstart"),
    )
    assert alert.returncode == 0, alert.stderr
    assert webhook.attempts == 2


def test_alerts_queued_before_a_sigkill_are_delivered_after_the_restart(
    tmp_path: Path, daemon: DaemonFactory, notify_listener: NotifyListener, webhook: Receiver
) -> None:
    webhook.set_mode("fail")
    config = alert_config(tmp_path, webhook_port=webhook.port)
    first = start_alerting(daemon, config, notify_listener)
    assert wait_until(lambda: webhook.attempts >= 2, timeout=10)  # retrying, nothing taken
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    webhook.set_mode("ok")
    second = start_alerting(daemon, config, notify_listener)
    bodies = webhook.wait_for(lambda b: events(b).count("daemon.ready") == 2)
    stop_alerting(second)
    assert events(bodies) == [
        "daemon.started",
        "daemon.ready",
        "daemon.restarted_unclean",
        "daemon.started",
        "daemon.ready",
    ]
    assert len({b["id"] for b in bodies}) == 5


def test_a_hanging_channel_does_not_touch_the_watchdog_cadence(
    tmp_path: Path, daemon: DaemonFactory, notify_listener: NotifyListener, webhook: Receiver
) -> None:
    # every request hangs for the whole send timeout: the loop's WATCHDOG=1 pings keep
    # their cadence and the stop is not held up beyond stop_flush_s
    webhook.set_mode("hang")
    config = alert_config(tmp_path, webhook_port=webhook.port, extra="send_timeout_s = 30")
    text = config.read_text().replace("tick_interval_s = 0.2", "tick_interval_s = 5")
    config.write_text(text)
    handle = start_alerting(daemon, config, notify_listener, WATCHDOG_USEC="1000000")
    ready_at = len(notify_listener.messages())
    assert wait_until(lambda: webhook.attempts >= 1, timeout=10)
    time.sleep(3)  # the span over which the cadence is measured, not a wait for a condition
    pings = [m.at for m in notify_listener.messages()[ready_at:] if m.fields.get("WATCHDOG")]
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    print(f"\nwatchdog gaps while the channel hangs: max {max(gaps) * 1000:.0f} ms, n={len(gaps)}")
    assert len(pings) >= 6 and max(gaps) < 0.75, gaps
    sent = time.monotonic()
    err = stop_alerting(handle)
    assert time.monotonic() - sent < 3 + 2.5  # stop_flush_s plus the usual stop
    assert "alert.unsent channel=hook" in err
