"""sd_notify messages as systemd would receive them, on a real AF_UNIX datagram socket."""

from __future__ import annotations

import logging
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from trendbotd.service.notify import (
    NullNotifier,
    SdNotifier,
    clean_status,
    make_notifier,
    watchdog_interval,
)


@pytest.fixture
def listener(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    with tempfile.TemporaryDirectory(prefix="tbd-n-", dir="/tmp") as directory:
        path = str(Path(directory) / "sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        yield sock
        sock.close()


def _recv(sock: socket.socket) -> dict[str, str]:
    data = sock.recv(65536).decode("utf-8")
    return dict(line.split("=", 1) for line in data.split("\n"))


def test_messages_on_the_wire(listener: socket.socket) -> None:
    n = make_notifier({"NOTIFY_SOCKET": "set"})
    assert isinstance(n, SdNotifier)
    n.status("syncing time")
    assert _recv(listener) == {"STATUS": "syncing time"}
    n.ready("trading 2 symbols")
    assert _recv(listener) == {"READY": "1", "STATUS": "trading 2 symbols"}
    n.extend_timeout(12.5)
    assert _recv(listener) == {"EXTEND_TIMEOUT_USEC": "12500000"}
    n.watchdog()
    assert _recv(listener) == {"WATCHDOG": "1"}
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    n.reloading()
    msg = _recv(listener)
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert msg["RELOADING"] == "1"
    assert before <= int(msg["MONOTONIC_USEC"]) <= after
    n.stopping("stopping on SIGTERM")
    assert _recv(listener) == {"STOPPING": "1", "STATUS": "stopping on SIGTERM"}


def test_non_latin1_status_arrives_as_utf8(listener: socket.socket) -> None:
    n = make_notifier({"NOTIFY_SOCKET": "set"})
    n.status("позиция BTC ✓ 同期中 🚀")
    assert _recv(listener) == {"STATUS": "позиция BTC ✓ 同期中 🚀"}


def test_status_cannot_inject_other_assignments(listener: socket.socket) -> None:
    n = make_notifier({"NOTIFY_SOCKET": "set"})
    n.status("bad\nREADY=1\nMAINPID=1")
    assert _recv(listener) == {"STATUS": "bad READY=1 MAINPID=1"}


def test_clean_status_bounds_length() -> None:
    assert len(clean_status("x" * 5000)) == 1000
    assert clean_status("  a \t b\r\nc ") == "a b c"


def test_abstract_socket_address(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"tbd-test-{time.monotonic_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    try:
        make_notifier({"NOTIFY_SOCKET": "@" + name}).status("abstract")
        assert _recv(sock) == {"STATUS": "abstract"}
    finally:
        sock.close()


def test_send_errors_are_logged_once_not_swallowed(
    listener: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    n = make_notifier({"NOTIFY_SOCKET": "set"})
    listener.close()  # the manager's socket went away
    with caplog.at_level(logging.ERROR, logger="trendbotd.service.notify"):
        n.status("one")
        n.status("two")
    failures = [r for r in caplog.records if "notify.send_failed" in r.getMessage()]
    assert len(failures) == 1


def test_connect_failure_is_logged_and_sends_are_noops(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    with caplog.at_level(logging.ERROR, logger="trendbotd.service.notify"):
        n = make_notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
        n.ready("x")
    assert any("notify.connect_failed" in r.getMessage() for r in caplog.records)


def test_null_notifier_outside_systemd() -> None:
    n = make_notifier({})
    assert isinstance(n, NullNotifier)
    assert n.watchdog_interval_s is None
    n.ready("x")
    n.watchdog()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "junk"}, None),
        ({"WATCHDOG_USEC": "3000000"}, 1.5),
        ({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "42"}, 1.5),
        ({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "43"}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval(env, pid=42) == expected


def test_sends_recover_when_the_socket_comes_back(
    listener: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    path = listener.getsockname()
    n = make_notifier({"NOTIFY_SOCKET": "set"})
    listener.close()
    Path(path).unlink()
    with caplog.at_level(logging.INFO, logger="trendbotd.service.notify"):
        n.status("lost")
        fresh = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        fresh.bind(path)
        fresh.settimeout(2)
        try:
            n.status("back")
            assert _recv(fresh) == {"STATUS": "back"}
        finally:
            fresh.close()
    assert any("notify.send_recovered" in r.getMessage() for r in caplog.records)
