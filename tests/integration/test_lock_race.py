"""Acceptance (a) and (b): the instance lock under a start-up stampede, after SIGKILL, and
against a planted symlink or foreign file."""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil  # imported here so forked children do not each import it
import pytest
from support.daemon_harness import (
    REAL_CMD,
    DaemonFactory,
    DaemonHandle,
    NotifyListener,
    clean_env,
    wait_until,
    write_config,
)

from trendbotd.errors import InstanceLockedError
from trendbotd.exitcodes import ExitCode
from trendbotd.service.pidlock import PidLock

CONTENDERS = 32
ROUNDS = 100

assert psutil.pid_exists(os.getpid())


def _contend(path: Path, go_r: int, result_w: int, release_r: int) -> None:
    """A forked child: wait for the start, try the lock, report, hold until released."""
    os.read(go_r, 1)  # EOF for everybody at the same instant
    lock = PidLock(path)
    try:
        lock.acquire()
    except InstanceLockedError as e:
        os.write(result_w, f"LOCKED {os.getpid()} {e}\n".encode())
        return
    os.write(result_w, f"OK {os.getpid()}\n".encode())
    os.read(release_r, 1)
    lock.release()


def _one_round(path: Path) -> tuple[list[str], list[str]]:
    go_r, go_w = os.pipe()
    result_r, result_w = os.pipe()
    release_r, release_w = os.pipe()
    children = []
    for _ in range(CONTENDERS):
        pid = os.fork()
        if pid == 0:  # child
            code = 0
            try:
                os.close(go_w)
                os.close(result_r)
                os.close(release_w)
                _contend(path, go_r, result_w, release_r)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        children.append(pid)
    for fd in (go_r, result_w, release_r):
        os.close(fd)
    os.close(go_w)  # start!
    lines: list[str] = []
    buf = b""
    deadline = time.monotonic() + 120  # bounds a wait only
    while len(lines) < CONTENDERS and time.monotonic() < deadline:
        ready, _, _ = select.select([result_r], [], [], 1)
        if ready:
            chunk = os.read(result_r, 65536)
            if not chunk:
                break
            buf += chunk
            *complete, rest = buf.split(b"\n")
            lines += [c.decode() for c in complete]
            buf = rest
    os.close(release_w)  # the winner may let go now
    os.close(result_r)
    statuses = [os.waitpid(pid, 0)[1] for pid in children]
    assert all(os.waitstatus_to_exitcode(s) == 0 for s in statuses), statuses
    winners = [line for line in lines if line.startswith("OK ")]
    losers = [line for line in lines if line.startswith("LOCKED ")]
    assert len(lines) == CONTENDERS, lines
    return winners, losers


def test_forked_contenders_exactly_one_wins_every_round(tmp_path: Path) -> None:
    path = tmp_path / "race.pid"
    for round_no in range(ROUNDS):
        winners, losers = _one_round(path)
        assert len(winners) == 1, (round_no, winners)
        winner_pid = winners[0].split()[1]
        assert len(losers) == CONTENDERS - 1
        for line in losers:
            assert f"already running: PID {winner_pid} (" in line, (round_no, line)
        assert not path.exists()  # the winner unlinked it while still holding the lock


def _collect_exits(handles: list[DaemonHandle], exited: dict[int, tuple[int, str]]) -> int:
    """Record the processes that exited since the last call; how many have, in all."""
    for h in handles:
        if h.pid not in exited and h.proc.poll() is not None:
            exited[h.pid] = (h.proc.returncode, h.proc.stderr.read() if h.proc.stderr else "")
    return len(exited)


def _stampede(tmp_path: Path, daemon: DaemonFactory, command: str, env: dict[str, str]) -> tuple[
    list[DaemonHandle], dict[int, tuple[int, str]]
]:  # fmt: skip
    """CONTENDERS shells that each say they are waiting, poll for the go file, then exec the
    daemon: once all are waiting, all start within ~10 ms of the go. Returns once all but
    one have exited, with their exit codes and stderr."""
    go, waiting = tmp_path / "go", tmp_path / "waiting"
    go.unlink(missing_ok=True)
    shutil.rmtree(waiting, ignore_errors=True)
    waiting.mkdir()
    script = f"touch {waiting}/$$; while [ ! -e {go} ]; do sleep 0.01; done; exec {command}"
    handles = [daemon.start(["-c", script], cmd=["/bin/sh"], env=env) for _ in range(CONTENDERS)]
    assert wait_until(lambda: len(list(waiting.iterdir())) == CONTENDERS, timeout=120)
    go.touch()
    exited: dict[int, tuple[int, str]] = {}
    assert wait_until(
        lambda: _collect_exits(handles, exited) >= CONTENDERS - 1, timeout=180, interval=0.05
    ), f"{len(exited)} of {CONTENDERS - 1} exited"
    return handles, exited


def test_real_processes_stampede_one_runs_others_exit_75(
    tmp_path: Path, daemon: DaemonFactory, notify_listener: NotifyListener
) -> None:
    config = write_config(tmp_path)
    env = clean_env(NOTIFY_SOCKET=notify_listener.path)
    command = " ".join([*REAL_CMD, "run", "--foreground", "--paper", "--config", str(config)])
    for round_no in range(3):
        after = len(notify_listener.messages())
        handles, exited = _stampede(tmp_path, daemon, command, env)
        running = [h for h in handles if h.pid not in exited]
        assert len(running) == 1, (round_no, len(running), list(exited.values())[:3])
        holder = running[0]
        for code, err in exited.values():
            assert code == ExitCode.ALREADY_RUNNING, err
            lines = err.strip().splitlines()
            assert len(lines) == 1, err
            assert re.match(
                rf"trendbotd: already running: PID {holder.pid} \(.* run --foreground .*\), "
                r"started \d{4}-\d\d-\d\d \d\d:\d\d:\d\d",
                lines[0],
            ), lines[0]
        # the holder is a running daemon once READY: only then is SIGTERM a plain stop
        notify_listener.wait_key("READY", "1", after=after, timeout=120, proc=holder.proc)
        holder.signal(signal.SIGTERM)
        assert holder.wait(timeout=60) == 0


def _lock_path(tmp_path: Path) -> Path:
    return tmp_path / "run" / "itest.pid"


def test_sigkilled_holder_does_not_block_the_next_start(
    tmp_path: Path, daemon: DaemonFactory, notify_listener: NotifyListener
) -> None:
    config = write_config(tmp_path)
    env = clean_env(NOTIFY_SOCKET=notify_listener.path)
    args = ["run", "--foreground", "--paper", "--config", str(config)]
    first = daemon.start(args, cmd=REAL_CMD, env=env)
    notify_listener.wait_key("READY", "1", timeout=60, proc=first.proc)
    first.signal(signal.SIGKILL)
    first.wait(timeout=60)
    lock = _lock_path(tmp_path)
    assert lock.read_text().strip() == str(first.pid)  # stale file left behind
    after = len(notify_listener.messages())
    started = time.monotonic()
    second = daemon.start(args, cmd=REAL_CMD, env=env)
    notify_listener.wait_key("READY", "1", timeout=60, after=after, proc=second.proc)
    assert wait_until(lambda: lock.read_text().strip() == str(second.pid), timeout=60)
    assert second.proc.poll() is None
    print(f"restart after SIGKILL to READY: {time.monotonic() - started:.2f} s")
    second.signal(signal.SIGTERM)
    assert second.wait(timeout=60) == 0
    assert not lock.exists()


def test_symlink_at_lock_path_is_refused_and_target_untouched(
    tmp_path: Path, daemon: DaemonFactory
) -> None:
    config = write_config(tmp_path)
    lock = _lock_path(tmp_path)
    lock.parent.mkdir()
    target = tmp_path / "precious.txt"
    target.write_text("do not truncate me\n")
    before = target.stat()
    lock.symlink_to(target)
    result = daemon.run(["run", "--foreground", "--paper", "--config", str(config)], timeout=60)
    assert result.returncode == ExitCode.CANT_CREATE
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "symlink" in lines[0] and str(lock) in lines[0]
    assert lock.is_symlink()
    assert target.read_text() == "do not truncate me\n"
    assert target.stat().st_mtime_ns == before.st_mtime_ns


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown a file to another user")
def test_lock_file_owned_by_another_user_is_refused(tmp_path: Path, daemon: DaemonFactory) -> None:
    config = write_config(tmp_path)
    lock = _lock_path(tmp_path)
    lock.parent.mkdir()
    lock.write_text("12345\n")
    os.chown(lock, 65534, 65534)
    result = daemon.run(["run", "--foreground", "--paper", "--config", str(config)], timeout=60)
    assert result.returncode == ExitCode.CANT_CREATE
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "owned by uid 65534" in lines[0]
    assert lock.read_text() == "12345\n"
    assert lock.stat().st_uid == 65534


def test_duplicate_exits_before_heavy_imports(tmp_path: Path, daemon: DaemonFactory) -> None:
    """The lock comes before ccxt and numpy: a duplicate never imports them."""
    config = write_config(tmp_path)
    lock = _lock_path(tmp_path)
    lock.parent.mkdir()
    holder = PidLock(lock)
    holder.acquire()
    try:
        result = subprocess.run(
            [
                *REAL_CMD[:1],
                "-X",
                "importtime",
                *REAL_CMD[1:],
                "run",
                "--paper",
                "--config",
                str(config),
            ],
            check=False,
            cwd=tmp_path,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        holder.release()
    assert result.returncode == ExitCode.ALREADY_RUNNING
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "trendbotd.service.pidlock" in imported
    behind_lock = {
        "ccxt",
        "numpy",
        "aiohttp",
        "sqlite3",
        "daemon",
        "sdnotify",
        "trendbotd.service.lifecycle",
    }
    heavy = {m for m in imported if m in behind_lock or m.split(".")[0] in behind_lock}
    assert not heavy, heavy
    lazy = {m for m in imported if m.startswith(("trendbotd.sim", "trendbotd.backtest"))}
    assert not lazy, lazy
    message = [line for line in result.stderr.splitlines() if not line.startswith("import time")]
    assert len(message) == 1 and f"PID {os.getpid()} (" in message[0], message
