"""Helpers for tests that run the real daemon process: the notify socket stand-in, the
daemon launcher, config writing, a clean environment, and the unprotected-time record the
session summary prints (tests/integration/conftest.py holds the fixtures over them)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support.daemon_config import config_text
from support.waiting import wait_until  # noqa: F401 - re-exported for the daemon tests

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
SCRIPTED = str(Path(__file__).resolve().parents[1] / "integration" / "scripted_daemon.py")
REAL_CMD = [PYTHON, "-m", "trendbotd"]
SCRIPTED_CMD = [PYTHON, SCRIPTED]


# (case, max gap ms, total ms, gaps): the exchange's own measure, see trendbotd/sim/protection.py
UNPROTECTED: list[tuple[str, int, int, int]] = []


def record_unprotected(case: str, protection: Mapping[str, Mapping[str, Any]]) -> int:
    """Note one case's unprotected time (the ``protection`` of GET /sim/state) for the
    summary; returns its longest gap in ms."""
    longest = max((int(r["max_gap_ms"]) for r in protection.values()), default=0)
    total = sum(int(r["unprotected_ms"]) for r in protection.values())
    gaps = sum(int(r["gaps"]) for r in protection.values())
    UNPROTECTED.append((case, longest, total, gaps))
    return longest


@dataclass
class Notification:
    at: float  # time.monotonic() on arrival
    fields: dict[str, str]
    raw: bytes


@dataclass
class NotifyListener:
    path: str
    sock: socket.socket
    received: list[Notification] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def serve(self) -> None:
        """Record datagrams until the socket is closed (on a thread of its own)."""
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                continue
            fields = dict(
                line.split("=", 1) for line in data.decode("utf-8").split("\n") if "=" in line
            )
            with self._cond:
                self.received.append(Notification(time.monotonic(), fields, data))
                self._cond.notify_all()

    def messages(self) -> list[Notification]:
        with self._cond:
            return list(self.received)

    def wait_for(
        self,
        predicate: Callable[[Notification], bool],
        *,
        timeout: float = 20.0,
        after: int = 0,
        proc: subprocess.Popen[str] | None = None,
    ) -> tuple[int, Notification]:
        """Index and message of the first message from index ``after`` matching ``predicate``.
        Gives up early when ``proc`` exits."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i, msg in enumerate(self.received[after:], start=after):
                    if predicate(msg):
                        return i, msg
                remaining = deadline - time.monotonic()
                shown = [m.raw for m in self.received]
                if proc is not None and proc.poll() is not None:
                    raise AssertionError(f"process exited {proc.returncode}; got {shown}")
                if remaining <= 0:
                    raise AssertionError(f"no matching notification within {timeout} s: {shown}")
                self._cond.wait(min(remaining, 0.2))

    def wait_key(
        self,
        key: str,
        value: str | None = None,
        *,
        timeout: float = 20.0,
        after: int = 0,
        proc: subprocess.Popen[str] | None = None,
    ) -> tuple[int, Notification]:
        return self.wait_for(
            lambda m: key in m.fields and (value is None or m.fields[key] == value),
            timeout=timeout,
            after=after,
            proc=proc,
        )


def write_config(directory: Path, extra: str = "", *, name: str = "itest") -> Path:
    """A paper-mode config whose lock, state and log live under ``directory``."""
    path = directory / "trendbotd.toml"
    path.write_text(
        config_text(
            directory,
            name=name,
            exchange="paper = true",
            service="tick_interval_s = 0.2",
            extra=extra,
        )
    )
    return path


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a daemon under test: no inherited systemd variables."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "NOTIFY_SOCKET",
            "WATCHDOG_USEC",
            "WATCHDOG_PID",
            "JOURNAL_STREAM",
            "INVOCATION_ID",
            "RUNTIME_DIRECTORY",
        }
    }
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


class DaemonHandle:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def output(self, timeout: float = 10) -> tuple[str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return out, err


class DaemonFactory:
    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.started: list[DaemonHandle] = []
        self.extra_pids: list[int] = []

    def start(
        self,
        args: list[str],
        *,
        cmd: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> DaemonHandle:
        proc = subprocess.Popen(
            [*(cmd or REAL_CMD), *args],
            cwd=self.cwd,
            env=env or clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        handle = DaemonHandle(proc)
        self.started.append(handle)
        return handle

    def run(
        self,
        args: list[str],
        *,
        cmd: list[str] | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*(cmd or REAL_CMD), *args],
            check=False,
            cwd=self.cwd,
            env=env or clean_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def cleanup(self) -> None:
        for handle in self.started:
            if handle.proc.poll() is None:
                os.kill(handle.pid, signal.SIGCONT)  # in case a test left it stopped
                handle.proc.kill()
                handle.proc.wait(timeout=10)
            for stream in (handle.proc.stdout, handle.proc.stderr):
                if stream is not None:
                    stream.close()
        for pid in self.extra_pids:  # detached daemons (--daemon) are not our children
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
