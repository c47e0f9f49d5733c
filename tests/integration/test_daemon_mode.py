"""Acceptance (d): ``trendbotd run --daemon`` returns once the daemon is ready, leaves the
daemon's PID (not its own) in the lock file, refuses a second daemon with 75 and passes a
startup failure back as its own exit code."""

from __future__ import annotations

import os
import re
import signal
import socket
from pathlib import Path

import psutil
from support.daemon_harness import (
    REAL_CMD,
    SCRIPTED_CMD,
    DaemonFactory,
    NotifyListener,
    clean_env,
    wait_until,
    write_config,
)

from trendbotd.exitcodes import ExitCode


def _config(tmp_path: Path) -> Path:
    config = write_config(tmp_path)
    config.write_text(
        config.read_text().replace(
            "[service]\n", f'[service]\nlog_file = "{tmp_path / "daemon.log"}"\n'
        )
    )
    return config


def _daemon_pid(stdout: str) -> int:
    m = re.search(r"daemon running as PID (\d+)", stdout)
    assert m, stdout
    return int(m.group(1))


def test_daemon_returns_when_ready_and_the_pid_file_names_the_daemon(
    tmp_path: Path, daemon: DaemonFactory
) -> None:
    config = _config(tmp_path)
    lock = tmp_path / "run" / "itest.pid"
    args = ["run", "--daemon", "--paper", "--config", str(config)]
    launcher = daemon.start(args, cmd=REAL_CMD)
    out, err = launcher.output(timeout=60)
    assert launcher.proc.returncode == 0, err
    pid = _daemon_pid(out)
    daemon.extra_pids.append(pid)
    assert pid != launcher.pid
    assert lock.read_text().strip() == str(pid)
    assert "daemon.ready" in (tmp_path / "daemon.log").read_text()  # ready before we returned
    proc = psutil.Process(pid)
    assert proc.status() != psutil.STATUS_ZOMBIE
    assert os.getsid(pid) != os.getsid(0)  # its own session, no controlling terminal
    assert os.getsid(pid) != pid  # double fork: not a session leader, cannot get a terminal
    status = Path(f"/proc/{pid}/status").read_text()
    assert re.search(r"^Umask:\s+0027$", status, re.M), status
    assert Path(f"/proc/{pid}/cwd").resolve() == tmp_path.resolve()
    assert os.readlink(f"/proc/{pid}/fd/0") == "/dev/null"

    second = daemon.run(args, cmd=REAL_CMD, timeout=30)
    assert second.returncode == ExitCode.ALREADY_RUNNING
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and f"already running: PID {pid} (" in lines[0], second.stderr

    os.kill(pid, signal.SIGTERM)
    assert wait_until(lambda: not psutil.pid_exists(pid), timeout=30)
    assert not lock.exists()
    assert "daemon.exit code=0" in (tmp_path / "daemon.log").read_text()


def test_launcher_waits_for_readiness(tmp_path: Path, daemon: DaemonFactory) -> None:
    config = _config(tmp_path)
    gate = tmp_path / "gate"
    launcher = daemon.start(
        ["run", "--daemon", "--paper", "--config", str(config)],
        cmd=SCRIPTED_CMD,
        env=clean_env(SCRIPT_GATE_FILE=str(gate)),
    )
    lock = tmp_path / "run" / "itest.pid"

    def daemon_holds_lock() -> bool:
        text = lock.read_text().strip() if lock.exists() else ""
        return text.isdigit() and int(text) != launcher.pid

    # the daemon has its own PID in the lock and waits at the gate (READY impossible yet)
    assert wait_until(daemon_holds_lock, timeout=60)
    daemon_pid = int(lock.read_text())
    assert launcher.proc.poll() is None  # the daemon is still syncing: the launcher waits
    daemon.extra_pids.append(daemon_pid)
    assert daemon_pid != launcher.pid
    gate.touch()
    out, err = launcher.output(timeout=30)
    assert launcher.proc.returncode == 0, err
    assert _daemon_pid(out) == daemon_pid
    os.kill(daemon_pid, signal.SIGTERM)
    assert wait_until(lambda: not psutil.pid_exists(daemon_pid), timeout=30)


def test_startup_failure_reaches_the_launcher(tmp_path: Path, daemon: DaemonFactory) -> None:
    config = _config(tmp_path)
    result = daemon.run(
        ["run", "--daemon", "--paper", "--config", str(config)],
        cmd=SCRIPTED_CMD,
        env=clean_env(SCRIPT_FAIL_START="exchange unreachable after 3 attempts"),
        timeout=30,
    )
    assert result.returncode == ExitCode.UNAVAILABLE  # StartupSyncError's code
    lines = result.stderr.strip().splitlines()
    assert lines == ["trendbotd: startup failed: exchange unreachable after 3 attempts"]
    assert not (tmp_path / "run" / "itest.pid").exists()
    log = (tmp_path / "daemon.log").read_text()
    assert "startup.failed code=69" in log


def test_daemon_flag_under_notify_socket_stays_in_the_foreground(
    tmp_path: Path, daemon: DaemonFactory, notify_listener: NotifyListener
) -> None:
    config = _config(tmp_path)
    handle = daemon.start(
        ["run", "--daemon", "--paper", "--config", str(config)],
        cmd=REAL_CMD,
        env=clean_env(NOTIFY_SOCKET=notify_listener.path),
    )
    notify_listener.wait_key("READY", "1", timeout=60, proc=handle.proc)
    assert (tmp_path / "run" / "itest.pid").read_text().strip() == str(handle.pid)
    handle.signal(signal.SIGTERM)
    assert handle.wait(timeout=60) == 0
    _, err = handle.output()
    assert "--daemon ignored: NOTIFY_SOCKET is set" in err


def test_real_startup_failure_reaches_the_launcher(tmp_path: Path, daemon: DaemonFactory) -> None:
    """The simulated exchange cannot bind its port: the launcher reports the daemon's error."""
    config = _config(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config.write_text(config.read_text() + f"\n[paper]\nport = {port}\n")
        result = daemon.run(["run", "--daemon", "--config", str(config)], timeout=60)
    assert result.returncode not in (0, ExitCode.ALREADY_RUNNING)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Address already in use" in lines[0], result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "run" / "itest.pid").exists()
