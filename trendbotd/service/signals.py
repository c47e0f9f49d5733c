"""Signals are queued, never acted on in the handler: the main loop decides what to do.

The handler appends the signal number and writes one byte to a self-pipe, so a loop
sleeping in ``wait()`` wakes at once (a SIGTERM must stop us within 2 s, not after the
next tick). SIGUSR1 dumps every thread's stack (faulthandler, at C level); a watchdog
SIGABRT leaves a stack in the journal through ``faulthandler.enable()``.
"""

from __future__ import annotations

import collections
import contextlib
import faulthandler
import os
import select
import signal
import sys
from collections.abc import Callable
from types import FrameType

STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})
RELOAD_SIGNAL = signal.SIGHUP
# `trendbotd halt` / `flatten` wake the lock holder with this after journalling their
# request (SIGUSR1 is the stack dump)
OPERATOR_SIGNAL = signal.SIGUSR2

Handler = Callable[[int, FrameType | None], None]


class StopRequested(BaseException):
    """Raised at a safe point (a startup step) when SIGTERM/SIGINT arrived.

    A BaseException so that a broad ``except Exception`` in the code being interrupted
    cannot turn a requested stop into an error.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class SignalQueue:
    def __init__(self) -> None:
        self._pending: collections.deque[int] = collections.deque()
        self._stop_signal: int | None = None
        self._rfd: int | None = None
        self._wfd: int | None = None

    def open_wakeup(self) -> None:
        """Create the self-pipe. Call after the daemon context closed inherited descriptors."""
        if self._rfd is None:
            self._rfd, self._wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def close(self) -> None:
        for fd in (self._rfd, self._wfd):
            if fd is not None:
                os.close(fd)
        self._rfd = self._wfd = None

    def handler_map(self) -> dict[int, Handler]:
        """For python-daemon's ``signal_map`` (or ``install``)."""
        return {sig: self._handle for sig in (*STOP_SIGNALS, RELOAD_SIGNAL, OPERATOR_SIGNAL)}

    def install(self) -> None:
        for sig, handler in self.handler_map().items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        # Runs between bytecodes of the main thread: no logging, no I/O besides the wake byte.
        self._pending.append(signum)
        if signum in STOP_SIGNALS and self._stop_signal is None:
            self._stop_signal = signum
        if self._wfd is not None:
            with contextlib.suppress(BlockingIOError):  # pipe full: a wake-up is pending anyway
                os.write(self._wfd, b"\0")

    @property
    def stop_signal(self) -> int | None:
        """The first stop signal received, if any."""
        return self._stop_signal

    def check_stop(self) -> None:
        """Raise StopRequested if a stop signal arrived (used at safe points in startup)."""
        if self._stop_signal is not None:
            raise StopRequested(self._stop_signal)

    def pop_all(self) -> list[int]:
        items: list[int] = []
        while self._pending:
            items.append(self._pending.popleft())
        return items

    def wait(self, seconds: float) -> None:
        """Sleep up to ``seconds``; return early when a signal arrives."""
        if self._pending:
            return
        if self._rfd is None:
            select.select([], [], [], max(0.0, seconds))
            return
        ready, _, _ = select.select([self._rfd], [], [], max(0.0, seconds))
        if ready:
            with contextlib.suppress(BlockingIOError):
                os.read(self._rfd, 4096)


def enable_faulthandler() -> None:
    """Stacks to stderr on fatal signals (watchdog SIGABRT) and on demand with SIGUSR1."""
    faulthandler.enable(file=sys.stderr, all_threads=True)
    faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True, chain=False)
