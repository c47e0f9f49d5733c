"""Where the weight budget lives: in memory (one process) or in a small file shared by
every instance on the host, since Binance counts request weight per IP.

The file (JSON, a few hundred bytes, under the runtime directory) is read, changed and
written back under ``flock`` for each request; the lock is never held across a request,
so an instance that crashes or hangs leaves nothing locked (the kernel drops the lock of
a dead process). A file that is missing, unreadable or garbled is logged and rebuilt from
zero: the exchange's next answer brings the real counts back, and a bad file must not
stop trading.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

from trendbotd.adapters.weight_budget import BudgetState

logger = logging.getLogger(__name__)

T = TypeVar("T")
FORMAT_VERSION = 1
_MAX_BYTES = 4096
_FIELDS = tuple(f.name for f in dataclasses.fields(BudgetState))


class BudgetStore(Protocol):
    def update(self, change: Callable[[BudgetState], tuple[T, BudgetState]]) -> T:
        """Apply ``change`` to the current state atomically; return its first value."""
        ...


class LocalBudget:
    """The budget of this process alone (paper trading, tests)."""

    def __init__(self) -> None:
        self._state = BudgetState()

    def update(self, change: Callable[[BudgetState], tuple[T, BudgetState]]) -> T:
        result, self._state = change(self._state)
        return result


class SharedBudgetFile:
    """The budget of every instance on this host that uses the same file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fallback: LocalBudget | None = None

    def update(self, change: Callable[[BudgetState], tuple[T, BudgetState]]) -> T:
        if self._fallback is None:
            try:
                return self._update_file(change)
            except OSError as e:
                # Trading goes on with this process's own count; a restart tries again.
                logger.warning(
                    "ratelimit.shared_state_unusable path=%s error=%s; counting alone",
                    self.path,
                    e,
                )
                self._fallback = LocalBudget()
        return self._fallback.update(change)

    def _update_file(self, change: Callable[[BudgetState], tuple[T, BudgetState]]) -> T:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            state = self._read(fd)
            result, new_state = change(state)
            if new_state != state:
                self._write(fd, new_state)
            return result
        finally:
            os.close(fd)  # closing drops the flock

    def _read(self, fd: int) -> BudgetState:
        raw = os.pread(fd, _MAX_BYTES, 0)
        if not raw:
            return BudgetState()
        try:
            return _parse(raw)
        except (ValueError, KeyError, UnicodeDecodeError) as e:
            logger.warning("ratelimit.shared_state_corrupt path=%s error=%s; rebuilt", self.path, e)
            return BudgetState()

    def _write(self, fd: int, state: BudgetState) -> None:
        data = json.dumps({"version": FORMAT_VERSION, **dataclasses.asdict(state)}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)


def _parse(raw: bytes) -> BudgetState:
    data = json.loads(raw)
    if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
        raise ValueError(f"unknown format {data!r:.80}")
    values = {k: data[k] for k in _FIELDS}
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values.values()):
        raise ValueError("a counter is not an integer")
    return BudgetState(**values)
