"""Becoming a well-behaved process, foreground or daemon. The only user of python-daemon.

``--foreground`` (what the systemd unit uses) never forks. ``--daemon`` is the classic
double fork with a readiness handshake (daemon(7)): the launching command returns only
once the daemon is READY (exit 0) or has failed (its exit code and its one-line error).

    launcher: lock held -> pipe -> fork -> waits on the pipe -> prints -> exits
       child: DaemonContext.open(): fork, setsid, fork (python-daemon _exit()s parents)
      daemon: pidfile.__enter__ writes the daemon's PID -> serve() -> READY/FAIL on the pipe

flock belongs to the open file description, so the lock taken by the launcher is the
daemon's lock; the launcher only closes its copy of the descriptor.

Decision: ``--daemon`` is ignored (we stay in the foreground, with a warning) when
NOTIFY_SOCKET is set — under Type=notify a forked daemon breaks the protocol ("Failed with
result 'protocol'") — and when we are PID 1 (a container's init must not exit). Under
systemd without NOTIFY_SOCKET (Type=forking + PIDFile=) ``--daemon`` works as asked.

python-daemon's defaults are corrected: umask 027 (not 0), core dumps left to the system,
stdout/stderr passed through in the foreground, the working directory kept (relative
paths in the config and the ./var fallbacks stay meaningful), SIGTERM/SIGINT/SIGHUP queued
for the loop instead of its SIGTERM handler that exits with status 1.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import daemon

from trendbotd.exitcodes import ExitCode
from trendbotd.service.pidlock import PidLock
from trendbotd.service.signals import Handler

UMASK = 0o027
_MAX_LINE = 4096


def should_fork(*, want_daemon: bool, env: Mapping[str, str], pid: int) -> tuple[bool, str]:
    """Whether to double-fork, and why not when ``--daemon`` was asked for."""
    if not want_daemon:
        return False, ""
    if env.get("NOTIFY_SOCKET"):
        return False, "--daemon ignored: NOTIFY_SOCKET is set (systemd Type=notify)"
    if pid == 1:
        return False, "--daemon ignored: running as PID 1"
    return True, ""


def make_context(
    lock: PidLock,
    *,
    detach: bool,
    handlers: Mapping[int, Handler],
    preserve: list[int],
    stderr: IO[Any] | None = None,
) -> Any:
    """A DaemonContext with our lock as ``pidfile`` and our signal handlers."""
    signal_map: dict[int, Any] = dict(handlers)
    if detach:
        # no terminal any more: job-control signals must not stop the daemon
        signal_map.update({signal.SIGTSTP: None, signal.SIGTTIN: None, signal.SIGTTOU: None})
    return daemon.DaemonContext(
        working_directory=str(Path.cwd()),
        umask=UMASK,
        prevent_core=False,
        detach_process=detach,
        pidfile=lock,
        files_preserve=[lock.fileno(), *preserve],
        stdin=None if detach else sys.stdin,
        stdout=None if detach else sys.stdout,
        stderr=stderr if detach else sys.stderr,
        signal_map=signal_map,
    )


class Handshake:
    """The daemon's end of the readiness pipe. Foreground runs use ``Handshake(None)``."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    def fileno(self) -> int | None:
        return self._fd

    def ready(self, text: str) -> None:
        self._send(f"READY {os.getpid()} {text}")

    def failed(self, code: int, text: str) -> None:
        self._send(f"FAIL {int(code)} {text}")

    def _send(self, line: str) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        data = (" ".join(line.split())[:_MAX_LINE] + "\n").encode("utf-8", "replace")
        try:
            # BrokenPipe: the launcher was interrupted; the daemon goes on regardless
            with contextlib.suppress(BrokenPipeError):
                os.write(fd, data)
        finally:
            os.close(fd)


ServeFn = Callable[[Handshake, Any], int]


def launch(
    lock: PidLock,
    serve: ServeFn,
    *,
    handlers: Mapping[int, Handler],
    stderr_path: Path | None,
    timeout_s: float,
) -> int:
    """Run ``serve(handshake, context)`` in a detached daemon; return the launcher's exit code.

    ``serve`` must report through the handshake (``ready`` or ``failed``) exactly once.
    """
    rfd, wfd = os.pipe2(os.O_CLOEXEC)
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked processes, checked end to end
        os.close(rfd)
        _run_child(lock, serve, wfd, handlers=handlers, stderr_path=stderr_path)
    # The launcher only waits for the handshake: a SIGTERM or Ctrl-C ends it as any command
    # (the flag-only handlers stay with the daemon, which inherited any stop already queued).
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    os.close(wfd)
    lock.forget()  # the daemon owns the lock now: closing our fd neither unlocks nor unlinks
    try:
        return _await_daemon(rfd, child, timeout_s=timeout_s)
    finally:
        os.close(rfd)


def _run_child(
    lock: PidLock,
    serve: ServeFn,
    wfd: int,
    *,
    handlers: Mapping[int, Handler],
    stderr_path: Path | None,
) -> None:
    handshake = Handshake(wfd)
    code = int(ExitCode.FAILURE)
    try:
        try:
            stderr = stderr_path.open("a", encoding="utf-8") if stderr_path else None
        except OSError as e:
            code = int(ExitCode.CANT_CREATE)
            handshake.failed(code, f"{stderr_path}: cannot open the log file: {e.strerror}")
            return
        context = make_context(lock, detach=True, handlers=handlers, preserve=[wfd], stderr=stderr)
        with context:  # forks twice; from here on we are the daemon and hold the lock
            code = serve(handshake, context)
    except BaseException as e:  # noqa: BLE001 - the launcher must hear about any failure
        handshake.failed(int(ExitCode.FAILURE), f"daemon failed to start: {e!r}")
    finally:
        logging.shutdown()
        os._exit(code)


def _await_daemon(rfd: int, child: int, *, timeout_s: float) -> int:
    buf = b""
    deadline = time.monotonic() + timeout_s
    while b"\n" not in buf:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            print(
                f"trendbotd: the daemon did not report ready within {timeout_s:.0f} s; "
                "it may still be starting (see its log)",
                file=sys.stderr,
            )
            return int(ExitCode.UNAVAILABLE)
        ready, _, _ = select.select([rfd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(rfd, _MAX_LINE)
        if not chunk:
            break
        buf += chunk
    _, status = os.waitpid(child, 0)  # the first child exits as soon as it has forked
    line = buf.decode("utf-8", "replace").strip()
    kind, _, rest = line.partition(" ")
    if kind == "READY":
        pid, _, text = rest.partition(" ")
        print(f"trendbotd: daemon running as PID {pid}: {text}")
        return int(ExitCode.OK)
    if kind == "FAIL":
        raw_code, _, text = rest.partition(" ")
        print(f"trendbotd: {text}", file=sys.stderr)
        failed = int(raw_code) if raw_code.isdigit() else 0
        return failed or int(ExitCode.FAILURE)
    print(
        "trendbotd: the daemon exited during startup without reporting "
        f"(status {os.waitstatus_to_exitcode(status)})",
        file=sys.stderr,
    )
    return int(ExitCode.FAILURE)
