"""trendbotd.service under a real systemd: readiness, status, watchdog, restarts, stop,
the instance lock across units and shells, bad configuration.

All tests share one container (``installed``); ``svc`` restores what a test changed.
"""

from __future__ import annotations

import threading
import time

import pytest
from systest_container import Container, message_text, nrestarts, wait_until
from systest_support import UNIT, Service, wait_active

pytestmark = pytest.mark.system

CONFIG = "/etc/trendbotd/trendbotd.toml"
RESTART_SEC = 5.0  # the unit's RestartSec=
PAPER = "[exchange]\npaper = true\n"


def unit_messages(c: Container, unit: str = UNIT, *, after: str = "") -> list[str]:
    return c.messages("-u", unit, after=after)


def invocation_entries(c: Container, unit: str = UNIT) -> list[dict[str, object]]:
    """The journal entries of the unit's current invocation (this run of the service)."""
    invocation = c.prop(unit, "InvocationID")
    # The daemon's own lines carry _SYSTEMD_INVOCATION_ID, systemd's lines about it INVOCATION_ID.
    return c.journal(f"_SYSTEMD_INVOCATION_ID={invocation}", "+", f"INVOCATION_ID={invocation}")


def names_holder(message: str, pid: str) -> bool:
    """The refusal names the running daemon by PID and command line (not "gone")."""
    return f"PID {pid} (" in message and "/usr/bin/trendbotd run" in message


def wait_restarted(c: Container, old_pid: str, *, timeout: float = 90) -> str:
    def new_pid() -> str:
        state = c.show(UNIT, "MainPID", "ActiveState")
        active = state["ActiveState"] == "active"
        return state["MainPID"] if active and state["MainPID"] not in ("0", old_pid) else ""

    return wait_until(new_pid, timeout=timeout, what=f"{UNIT} restarted (old PID {old_pid})")


def test_running_service_has_live_status_and_a_startup_journal(svc: Service) -> None:
    c = svc.container
    assert c.is_active(UNIT) == "active"
    status = c.prop(UNIT, "StatusText")
    assert status, "no STATUS= sent"
    assert "syncing" not in status.lower(), f"still a startup status after READY: {status!r}"
    assert f'Status: "{status}"' in c.run("systemctl", "status", "--no-pager", UNIT).stdout

    entries = invocation_entries(c)
    daemon = [e for e in entries if e.get("SYSLOG_IDENTIFIER") == "trendbotd"]
    text = [message_text(e) for e in daemon]
    order = ["daemon.start", "lock.held", "startup.step", "daemon.ready"]
    positions = [next((i for i, m in enumerate(text) if token in m), -1) for token in order]
    assert -1 not in positions and positions == sorted(positions), "\n".join(text)
    # Priorities reach the journal: info lines are 6, and `-p warning` filters them out.
    start_line = next(e for e in daemon if "daemon.start" in message_text(e))
    assert start_line["PRIORITY"] == "6"
    assert all(not message_text(e).startswith("<") for e in daemon), "raw <N> prefixes"
    warnings = c.messages("-u", UNIT, "-p", "warning", f"_PID={c.prop(UNIT, 'MainPID')}")
    assert not any("daemon.start" in m or "daemon.ready" in m for m in warnings), warnings


def test_start_blocks_until_ready_after_a_slow_sync(svc: Service) -> None:
    c = svc.container
    c.run("systemctl", "stop", UNIT, timeout=90)
    svc.config(CONFIG, PAPER + "[paper]\nresponse_delay_ms = 400\n")
    seen: list[tuple[str, str]] = []
    took: list[float] = []

    def start() -> None:
        t0 = time.monotonic()
        c.run("systemctl", "start", UNIT, timeout=180)
        took.append(time.monotonic() - t0)

    starter = threading.Thread(target=start)
    starter.start()
    while starter.is_alive():
        s = c.show(UNIT, "ActiveState", "StatusText")
        seen.append((s["ActiveState"], s["StatusText"]))
        time.sleep(0.2)
    starter.join()

    assert took, "systemctl start failed"
    props = c.show(
        UNIT, "ActiveState", "ExecMainStartTimestampMonotonic", "ActiveEnterTimestampMonotonic"
    )
    assert props["ActiveState"] == "active"
    to_ready = (
        int(props["ActiveEnterTimestampMonotonic"]) - int(props["ExecMainStartTimestampMonotonic"])
    ) / 1e6
    # The sync takes seconds against the slow exchange; start returned only after READY=1.
    assert to_ready >= 2.0, f"READY=1 after {to_ready:.2f} s: the sync did not wait?"
    assert took[0] >= to_ready - 0.5, f"start returned after {took[0]:.2f} s, ready {to_ready:.2f}"
    startup = [text for state, text in seen if state == "activating" and text]
    assert startup, f"never saw the startup status while activating: {seen}"
    text = [message_text(e) for e in invocation_entries(c)]
    ready = next(i for i, m in enumerate(text) if "daemon.ready" in m)
    started = next(i for i, m in enumerate(text) if m.startswith("Started trendbotd.service"))
    assert ready < started, "\n".join(text)


def test_sigkill_is_restarted_and_counted(svc: Service) -> None:
    c = svc.container
    pid, before = c.prop(UNIT, "MainPID"), nrestarts(c, UNIT)
    cursor = c.journal_cursor()
    c.run("kill", "-9", pid)
    wait_restarted(c, pid)
    assert nrestarts(c, UNIT) == before + 1
    messages = unit_messages(c, after=cursor)
    assert any("status=9/KILL" in m for m in messages), messages
    assert any("Scheduled restart job" in m for m in messages), messages


def test_stuck_daemon_is_aborted_by_the_watchdog_with_a_python_stack(svc: Service) -> None:
    c = svc.container
    svc.drop_in(UNIT, "WatchdogSec=3\n", name="50-watchdog.conf")
    c.run("systemctl", "restart", UNIT, timeout=120)
    wait_active(c)
    pid, before = c.prop(UNIT, "MainPID"), nrestarts(c, UNIT)
    cursor = c.journal_cursor()

    c.run("kill", "-STOP", pid)  # the loop stops; so do its WATCHDOG=1 pings
    wait_restarted(c, pid, timeout=60)

    messages = unit_messages(c, after=cursor)
    assert any("Watchdog timeout" in m for m in messages), messages
    assert any("Failed with result 'watchdog'" in m for m in messages), messages
    assert nrestarts(c, UNIT) == before + 1
    # journald ingests the dump asynchronously, one line at a time: wait for all of it
    # (a busy 2-core host has taken more than 20 s; the bound costs nothing when fast).
    deadline = time.monotonic() + 90
    while True:
        stack = c.messages("-u", UNIT, f"_PID={pid}", after=cursor)
        if any('File "/usr/lib/trendbotd/' in m for m in stack) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert any("Fatal Python error: Aborted" in m for m in stack), stack
    assert any('File "/usr/lib/trendbotd/' in m for m in stack), stack


@pytest.mark.parametrize("user", ["trendbotd", "root"])
def test_second_copy_from_a_shell_exits_75_naming_the_running_pid(svc: Service, user: str) -> None:
    c = svc.container
    pid = c.prop(UNIT, "MainPID")
    t0 = time.monotonic()
    result = c.run(
        "runuser", "-u", user, "--", "trendbotd", "run", "--foreground", "--config", CONFIG,
        check=False, timeout=60,
    )  # fmt: skip
    took = time.monotonic() - t0
    assert result.returncode == 75, result.stdout + result.stderr
    assert names_holder(result.stderr, pid), result.stderr
    assert took < 10, f"a duplicate start took {took:.1f} s"
    assert c.prop(UNIT, "MainPID") == pid
    assert c.is_active(UNIT) == "active"


def test_second_unit_for_the_same_instance_fails_without_a_restart_loop(svc: Service) -> None:
    c = svc.container
    other = "trendbotd@other.service"
    svc.units.append(other)
    svc.config("/etc/trendbotd/other.toml", '[instance]\nname = "trendbotd"\n' + PAPER)
    pid = c.prop(UNIT, "MainPID")

    assert c.run("systemctl", "start", other, check=False, timeout=60).returncode != 0
    time.sleep(RESTART_SEC + 2)  # a restart would have happened by now

    state = c.show(other, "ActiveState", "Result", "ExecMainStatus", "NRestarts")
    assert state == {
        "ActiveState": "failed",
        "Result": "exit-code",
        "ExecMainStatus": "75",
        "NRestarts": "0",
    }
    refused = [m for m in unit_messages(c, other) if "already running" in m]
    assert refused and names_holder(refused[0], pid), unit_messages(c, other)
    assert c.prop(UNIT, "MainPID") == pid


def test_stopping_one_unit_keeps_the_shared_lock_directory_of_the_others(svc: Service) -> None:
    c = svc.container
    second, duplicate = "trendbotd@second.service", "trendbotd@dupe.service"
    svc.units += [second, duplicate]
    svc.config("/etc/trendbotd/second.toml", '[instance]\nname = "second"\n' + PAPER)
    svc.config("/etc/trendbotd/dupe.toml", '[instance]\nname = "second"\n' + PAPER)
    c.run("systemctl", "start", second, timeout=120)

    c.run("systemctl", "stop", UNIT, timeout=90)

    assert c.exists("/run/trendbotd/second.pid"), "stopping trendbotd removed /run/trendbotd"
    assert c.run("systemctl", "start", duplicate, check=False, timeout=60).returncode != 0
    assert c.prop(duplicate, "ExecMainStatus") == "75"
    assert c.is_active(second) == "active"


def test_stop_is_graceful_and_leaves_the_unit_inactive_not_failed(svc: Service) -> None:
    c = svc.container
    pid = c.prop(UNIT, "MainPID")
    cursor = c.journal_cursor()
    c.run("systemctl", "stop", UNIT, timeout=90)

    state = c.show(UNIT, "ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
    assert state == {
        "ActiveState": "inactive",
        "Result": "success",
        "ExecMainCode": "1",  # CLD_EXITED: it exited, was not killed
        "ExecMainStatus": "0",
    }
    assert c.run("systemctl", "is-failed", UNIT, check=False).stdout.strip() == "inactive"
    daemon = c.messages("-u", UNIT, f"_PID={pid}", after=cursor)
    assert any("daemon.stopping signal=SIGTERM" in m for m in daemon), daemon
    assert any("daemon.exit code=0" in m for m in daemon), daemon
    assert not c.exists("/run/trendbotd/trendbotd.pid"), "PID file left after a clean stop"


def test_reload_rereads_the_config_in_the_same_process(svc: Service) -> None:
    c = svc.container
    pid = c.prop(UNIT, "MainPID")
    cursor = c.journal_cursor()
    c.run("systemctl", "reload", UNIT, timeout=60)
    wait_until(
        lambda: any("config.reloaded" in m for m in unit_messages(c, after=cursor)),
        timeout=30,
        what="config.reloaded in the journal",
    )
    assert c.prop(UNIT, "MainPID") == pid
    assert c.is_active(UNIT) == "active"


def test_bad_config_fails_with_78_a_clear_error_and_no_restart_loop(svc: Service) -> None:
    c = svc.container
    svc.config(CONFIG, PAPER + '[risk]\nrisk_per_trade = "1%"\n')
    cursor = c.journal_cursor()

    assert c.run("systemctl", "restart", UNIT, check=False, timeout=90).returncode != 0
    time.sleep(RESTART_SEC + 2)

    state = c.show(UNIT, "ActiveState", "Result", "ExecMainStatus", "NRestarts")
    assert state == {
        "ActiveState": "failed",
        "Result": "exit-code",
        "ExecMainStatus": "78",
        "NRestarts": "0",
    }
    # One line names the file, the line and the key ...
    wanted = f"{CONFIG}:4: risk.risk_per_trade"
    lines = [m for m in unit_messages(c, after=cursor) if wanted in m]
    assert lines, unit_messages(c, after=cursor)
    # ... at priority "err", so that `journalctl -p err` shows why the service failed.
    errors = c.messages("-u", UNIT, "-p", "err", after=cursor)
    assert any(wanted in m for m in errors), f"{lines[0]!r} is not logged at priority err"
