"""A stop signal is honoured from the moment the instance lock is held: SIGTERM or SIGINT
during startup ends the real daemon with exit 0 and a log line, never a death by signal
(-15) with the lock file left behind. Each signal is sent when a condition shows the
daemon is at the moment under test (its PID in the lock file, a startup STATUS step)."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest
from support.daemon_harness import (
    DaemonFactory,
    NotifyListener,
    clean_env,
    wait_until,
    write_config,
)

from trendbotd.exitcodes import ExitCode


def _lock(tmp_path: Path) -> Path:
    return tmp_path / "run" / "itest.pid"


def _holds_lock(lock: Path, pid: int) -> bool:
    try:
        return lock.read_text().strip() == str(pid)
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signal_right_after_the_lock_is_taken_exits_0(
    tmp_path: Path, daemon: DaemonFactory, signum: int
) -> None:
    config = write_config(tmp_path)
    handle = daemon.start(["run", "--foreground", "--paper", "--config", str(config)])
    lock = _lock(tmp_path)
    # the earliest outside-visible moment: the lock is ours (config and app not loaded yet)
    assert wait_until(lambda: _holds_lock(lock, handle.pid), timeout=60, interval=0.001)
    handle.signal(signum)
    code = handle.wait(timeout=60)
    _, err = handle.output()
    assert code == ExitCode.OK, (code, err[-2000:])
    name = signal.Signals(signum).name
    assert f"daemon.stop_requested during=startup signal={name}" in err, err[-2000:]
    assert "daemon.ready" not in err
    assert not lock.exists()


def test_sigterm_during_the_startup_sync_exits_0(
    tmp_path: Path, daemon: DaemonFactory, notify_listener: NotifyListener
) -> None:
    config = write_config(tmp_path)
    handle = daemon.start(
        ["run", "--foreground", "--paper", "--config", str(config)],
        env=clean_env(NOTIFY_SOCKET=notify_listener.path),
    )
    notify_listener.wait_key("STATUS", timeout=60, proc=handle.proc)  # the first sync step
    handle.signal(signal.SIGTERM)
    code = handle.wait(timeout=60)
    _, err = handle.output()
    assert code == ExitCode.OK, (code, err[-2000:])
    # stopped in the sync, or (on a fast machine) just after READY: both end cleanly
    assert re.search(r"daemon\.(stop_requested during=startup|stopping) signal=SIGTERM", err)
    assert not _lock(tmp_path).exists()


def test_daemon_mode_stop_during_startup_reaches_the_launcher(
    tmp_path: Path, daemon: DaemonFactory
) -> None:
    config = write_config(tmp_path)
    log = tmp_path / "daemon.log"
    config.write_text(config.read_text().replace("[service]\n", f'[service]\nlog_file = "{log}"\n'))
    launcher = daemon.start(["run", "--daemon", "--paper", "--config", str(config)])
    lock = _lock(tmp_path)

    def daemon_pid() -> int | None:
        try:
            text = lock.read_text().strip()
        except FileNotFoundError:
            return None
        return int(text) if text.isdigit() and int(text) != launcher.pid else None

    # the detached daemon has written its own PID: it holds the lock, READY not sent yet
    assert wait_until(lambda: daemon_pid() is not None, timeout=60, interval=0.001)
    pid = daemon_pid()
    assert pid is not None
    daemon.extra_pids.append(pid)
    os.kill(pid, signal.SIGTERM)
    out, err = launcher.output(timeout=60)
    assert wait_until(lambda: not lock.exists(), timeout=60), "the daemon released its lock"
    text = log.read_text()
    assert "daemon.exit code=0" in text, text[-2000:]
    if "daemon.ready" not in text:  # stopped before READY: the launcher says so
        assert "daemon.stop_requested during=startup signal=SIGTERM" in text
        assert launcher.proc.returncode == ExitCode.FAILURE
        assert "stopped by SIGTERM during startup" in err
    else:
        assert launcher.proc.returncode == ExitCode.OK, (out, err)
