"""Shared fixtures for tests that run the real daemon process.

``notify_listener``: an AF_UNIX datagram socket standing in for systemd's NOTIFY_SOCKET; it
records every datagram with the monotonic time it arrived.
``daemon``: starts ``python -m trendbotd ...`` (or the scripted-runner variant) in its own
directory and kills whatever is left at teardown, by PID.
``record_unprotected``: notes the unprotected time the simulated exchange measured in one
test case; the session ends with a table of them.
The helpers themselves live in tests/support/daemon_harness.py, imported by name from
there (a module called ``conftest`` is ambiguous when several suites run in one session).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.daemon_harness import UNPROTECTED, DaemonFactory, NotifyListener


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not UNPROTECTED:
        return
    tr = terminalreporter
    tr.section("unprotected time, measured by the simulated exchange")
    for case, longest, total, gaps in UNPROTECTED:
        tr.write_line(f"{case}: max {longest} ms, total {total} ms, {gaps} gaps")
    tr.write_line(f"maximum over {len(UNPROTECTED)} cases: {max(u[1] for u in UNPROTECTED)} ms")


@pytest.fixture
def notify_listener() -> Iterator[NotifyListener]:
    # A short path: AF_UNIX paths are limited to 108 bytes and pytest's tmp_path can be long.
    directory = tempfile.mkdtemp(prefix="tbd-notify-", dir="/tmp")
    path = os.path.join(directory, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    listener = NotifyListener(path, sock)
    thread = threading.Thread(target=listener.serve, daemon=True)
    thread.start()
    yield listener
    sock.shutdown(socket.SHUT_RDWR)
    sock.close()
    thread.join(timeout=2)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonFactory]:
    factory = DaemonFactory(tmp_path)
    yield factory
    factory.cleanup()
