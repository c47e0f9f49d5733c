"""The command side of ``trendbotd halt`` and ``trendbotd flatten``.

Halt only writes the journal (like resume: the daemon reads the mode before each entry)
and wakes the daemon if one runs. Flatten needs whoever drives the account: it tries to
take the instance lock. Busy: the daemon (or another command) holds it, so the request is
journalled and the holder woken with SIGUSR2; it acts at once. Ours: nobody else can
drive the account now (a daemon starting meanwhile fails fast, 75), so the command runs
the daemon's own startup sync (credentials, exchange, clock, reconciliation), executes
the request and releases the lock.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from trendbotd.config import Config
from trendbotd.errors import InstanceLockedError, JournalError
from trendbotd.exitcodes import ExitCode
from trendbotd.journal.operator_requests import (
    FlattenRequest,
    halt,
    halt_reason,
    last_flatten_outcome,
    pending_flatten,
    request_flatten,
)
from trendbotd.journal.store import open_journal
from trendbotd.service.instance_lock import InstanceKey, take_lock
from trendbotd.service.pidlock import existing_lock_location, query_holder
from trendbotd.service.signals import OPERATOR_SIGNAL, SignalQueue, StopRequested
from trendbotd.trading.compose.journal import journal_location

logger = logging.getLogger(__name__)
PROG = "trendbotd"


def run_halt(config: Config, *, operator: str, note: str) -> int:
    _, path = journal_location(config, create=False)
    _require_journal(path, "halt")
    holder = _holder_pid(config)
    with open_journal(path) as journal:
        plan = halt(
            journal,
            reason=halt_reason(operator, note),
            now_ms=time.time_ns() // 1_000_000,
            running=holder is not None,
        )
    print(f"{PROG}: {config.instance.name}: {plan.summary}")
    if holder is not None:
        _wake(holder)
    return ExitCode.OK


def run_flatten(config: Config, *, symbols: Sequence[str] | None, operator: str, note: str) -> int:
    now_ms = time.time_ns() // 1_000_000
    request = FlattenRequest(
        id=f"{now_ms}-{os.getpid()}",
        symbols=None if symbols is None else tuple(symbols),
        operator=operator,
        note=note,
        at_ms=now_ms,
    )
    # A stop asked for while we hold the lock ends at a safe point, never half-way.
    signals = SignalQueue()
    signals.install()
    try:
        lock, _ = take_lock(InstanceKey(config.instance.name, config.instance.runtime_dir))
    except InstanceLockedError:
        return _ask_the_holder(config, request)
    try:
        return _flatten_ourselves(config, request, signals)
    finally:
        lock.release()


def _ask_the_holder(config: Config, request: FlattenRequest) -> int:
    _, path = journal_location(config, create=False)
    _require_journal(path, "flatten")
    with open_journal(path) as journal:
        request_flatten(journal, request)
    holder = _holder_pid(config)
    print(
        f"{PROG}: {config.instance.name}: {request.reason}: journalled; halted (no new "
        "entries); the running daemon closes at market, keeps the stops until flat, and "
        "stays halted until `trendbotd resume` (`trendbotd status` shows it)"
    )
    if holder is not None:
        _wake(holder)
    else:  # it let go of the lock in between: the request waits in the journal
        print(
            f"{PROG}: note: the lock holder has just exited; the next start (or running "
            "this command again) carries it out",
            file=sys.stderr,
        )
    return ExitCode.OK


def _flatten_ourselves(config: Config, request: FlattenRequest, signals: SignalQueue) -> int:
    from trendbotd.service.notify import NullNotifier  # noqa: PLC0415 - heavy path only
    from trendbotd.trading.compose.root import trading_runner  # noqa: PLC0415 - ccxt behind the lock

    # What the sync and the closes log (warnings up) is the operator's record of it.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="trendbotd: %(message)s")
    # Our exit must not apply the daemon's shutdown policy: only the request is executed.
    risk = dataclasses.replace(config.risk, shutdown_policy="leave")
    runner, _ = trading_runner(dataclasses.replace(config, risk=risk), notifier=NullNotifier())
    try:
        # The journal opens in start(); the request goes in before the exchange sync, so
        # start() executes it (as a daemon does with one left pending).
        _, path = journal_location(config)
        with open_journal(path) as journal:
            request_flatten(journal, request)
        runner.start(_CommandProgress(signals, config.service.startup_timeout_s))
        journal_now = runner.journal
        if journal_now is not None and pending_flatten(journal_now) is not None:
            # start() logged a failure and left it pending (or a newer request came in
            # while we synced): once more, and this time a failure is our exit code
            runner.operator_requests()
        if journal_now is None or pending_flatten(journal_now) is not None:
            print(f"{PROG}: {config.instance.name}: flatten not done", file=sys.stderr)
            return ExitCode.FAILURE
        outcome = last_flatten_outcome(journal_now)
    except StopRequested as stop:
        print(f"{PROG}: stopped by {stop}; the request stays pending", file=sys.stderr)
        return 128 + stop.signum
    finally:
        runner.stop()
    print(
        f"{PROG}: {config.instance.name}: {request.reason}: done by this command (the daemon "
        f"is not running): {outcome}; `trendbotd resume` trades again"
    )
    return ExitCode.OK


class _CommandProgress:
    """StartupProgress for the command: a stop signal ends it at the next safe point; the
    sync is bounded by the daemon's own start timeout."""

    def __init__(self, signals: SignalQueue, timeout_s: float) -> None:
        self._signals = signals
        self._deadline = time.monotonic() + timeout_s
        self._timeout_s = timeout_s

    def step(self, text: str) -> None:
        self._checkpoint()
        logger.info("flatten.step %s", text)

    def waiting(self, seconds: float) -> None:
        self._checkpoint()
        logger.info("flatten.waiting seconds=%.1f", seconds)

    def _checkpoint(self) -> None:
        from trendbotd.errors import StartupSyncError  # noqa: PLC0415

        self._signals.check_stop()
        if time.monotonic() > self._deadline:
            raise StartupSyncError(
                f"exchange sync did not complete within service.startup_timeout_s="
                f"{self._timeout_s:g} s"
            )


def _require_journal(path: Path, what: str) -> None:
    if not path.is_file():
        raise JournalError(
            f"{path}: no journal for this instance (wrong --config, or the daemon has never "
            f"run with it); nothing to {what}"
        )


def _holder_pid(config: Config) -> int | None:
    location = existing_lock_location(config.instance.name, config.instance.runtime_dir)
    holder = query_holder(location.path)
    return None if holder is None else holder.pid


def _wake(pid: int) -> None:
    """SIGUSR2 to the lock holder: it reads the journal now instead of at its next tick."""
    try:
        os.kill(pid, OPERATOR_SIGNAL)
    except ProcessLookupError:
        print(f"{PROG}: note: PID {pid} has gone; the next start acts on it", file=sys.stderr)
    except PermissionError:
        print(
            f"{PROG}: note: not allowed to signal PID {pid} (run as its user or root); "
            "it acts at its next tick instead",
            file=sys.stderr,
        )
