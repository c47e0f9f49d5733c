"""The sim's state file: strict reads, atomic writes after every change of the account.

A write goes to a temp file in the same directory, is flushed and fsynced, renamed over
the old file, and the directory is fsynced: a crash at any instant leaves the old or the
new state, never a torn one. A file that cannot be read or parsed raises SimStateError
naming it; it is never replaced by a fresh account.

Saving is hooked to the account lock (see ``locking.py``): when the outermost holder
lets go and the account changed, a snapshot is taken under the lock and written right
after the release, before the request that made the change is answered. Writes are
ordered by a save lock and a sequence number, so an older snapshot never overwrites a
newer one. A holder that changed nothing but saw a change whose snapshot is not on disk
yet (the matching thread's stop trigger) waits for that write before its request is
answered: what a client was told survives a kill of the process. With nothing changed,
the sim clock alone is refreshed every few seconds so a restarted paper run can resume
its clock from about where it stopped.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trendbotd.sim import codec
from trendbotd.sim.errors import SimStateError, SimStateIOError
from trendbotd.sim.locking import AfterRelease
from trendbotd.sim.state import SimState

logger = logging.getLogger(__name__)

_WAIT_WRITTEN_S = 30.0  # bounds a wait only: a write takes milliseconds


class StateFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, Any] | None:
        """The checked document, or None if there is no file."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise SimStateError(self.path, f"cannot read it: {e}") from e
        try:
            data = json.loads(raw)
        except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
            raise SimStateError(
                self.path,
                f"not valid JSON ({e}); it was left as it is: repair it or move it away "
                "to start from a fresh account",
            ) from e
        try:
            return codec.check_header(data)
        except codec.StateFormatError as e:
            raise SimStateError(self.path, str(e)) from e

    def write(self, text: str) -> int:
        """Replace the file atomically and durably; returns the bytes written."""
        payload = text.encode()
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(self.path)
            dir_fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as e:
            raise SimStateIOError(self.path, f"cannot write it: {e}") from e
        return len(payload)


@dataclass(slots=True)
class SaveStats:
    """What saving has cost so far (snapshot: under the lock; write: JSON + disk, outside)."""

    saves: int = 0
    snapshot_s: float = 0.0
    write_s: float = 0.0
    last_bytes: int = 0

    @property
    def ms_per_save(self) -> float:
        return 1000 * (self.snapshot_s + self.write_s) / self.saves if self.saves else 0.0


class StatePersister:
    def __init__(
        self,
        state: SimState,
        file: StateFile,
        *,
        clock_ms: Callable[[], int],
        market: dict[str, Any],
        clock_interval_s: float,
    ) -> None:
        self._state = state
        self._file = file
        self._clock_ms = clock_ms
        self._market = market
        self._interval = clock_interval_s
        self._save_lock = threading.Lock()
        self._saved = threading.Condition(self._save_lock)
        # under the state lock:
        self._seq = 0
        self._revision = -1  # the account revision last snapshotted
        self._clock_at = 0.0  # monotonic time of the last snapshot
        self._clock_seen = -1
        self._snapshot_by = 0  # the thread that took the newest snapshot
        # under the save lock:
        self._written = 0
        # the newest seq whose write finished, written or failed; read without the lock
        # on release: it only grows, so a stale value costs a wait that ends at once
        self._tried = 0
        self._records = codec.RecordCache()
        self.stats = SaveStats()

    @property
    def path(self) -> Path:
        return self._file.path

    def load(self) -> bool:
        """Restore the account from the file; False if there is none yet."""
        data = self._file.read()
        if data is None:
            return False
        saved_market = data.get("market")
        if saved_market != self._market:
            logger.warning(
                "sim.state.market_changed path=%s saved=%s now=%s",
                self.path,
                saved_market,
                self._market,
            )
        try:
            codec.restore(self._state, data)
        except codec.StateFormatError as e:
            raise SimStateError(self.path, str(e)) from e
        state = self._state
        with state.lock:
            self._revision = state.revision  # loaded, not changed
            logger.info(
                "sim.state.loaded path=%s clock_ms=%s wallet=%s positions=%s open_orders=%s "
                "open_algos=%s",
                self.path,
                data["clock_ms"],
                state.wallet,
                sum(1 for b in state.books.values() if b.amount != 0),
                sum(1 for o in state.orders.values() if o.is_open),
                sum(1 for a in state.algos.values() if a.is_open),
            )
        return True

    def attach(self) -> None:
        self._state.lock.on_release = self._on_release

    def detach(self) -> None:
        self._state.lock.on_release = None

    def save_now(self) -> None:
        with self._state.lock:
            write = self._snapshot()
        write()

    def _on_release(self) -> AfterRelease | None:
        """Runs under the state lock when its outermost holder lets go."""
        if self._state.revision != self._revision:
            return self._snapshot()
        if time.monotonic() - self._clock_at >= self._interval:
            if self._clock_ms() != self._clock_seen:
                return self._snapshot()
            self._clock_at = time.monotonic()
        seq = self._seq
        if self._tried >= seq or self._snapshot_by == threading.get_ident():
            return None  # on disk, or this thread's own snapshot: it writes it next
        return lambda: self._wait_written(seq)

    def _wait_written(self, seq: int) -> None:
        """Until the write of snapshot ``seq`` (or a newer one) has finished (bounded)."""
        with self._saved:
            if not self._saved.wait_for(lambda: self._tried >= seq, timeout=_WAIT_WRITTEN_S):
                logger.warning("sim.state.save_wait_timeout path=%s seq=%s", self.path, seq)

    def _snapshot(self) -> AfterRelease:
        started = time.perf_counter()
        self._seq += 1
        seq = self._seq
        self._snapshot_by = threading.get_ident()
        self._revision = self._state.revision
        self._clock_at = time.monotonic()
        self._clock_seen = clock = self._clock_ms()
        text = codec.encode(self._state, clock_ms=clock, market=self._market, cache=self._records)
        took = time.perf_counter() - started
        return lambda: self._write(seq, text, took)

    def _write(self, seq: int, text: str, snapshot_s: float) -> None:
        with self._save_lock:
            if seq <= self._written:
                return  # a newer snapshot (which includes this one's change) is on disk
            started = time.perf_counter()
            try:
                size = self._file.write(text)
            except SimStateIOError:
                self._revision = -1  # the next release tries again; the caller logs it
                raise
            finally:
                self._tried = max(self._tried, seq)
                self._saved.notify_all()
            self._written = seq
            stats = self.stats
            stats.saves += 1
            stats.snapshot_s += snapshot_s
            stats.write_s += time.perf_counter() - started
            stats.last_bytes = size
        logger.debug("sim.state.saved path=%s seq=%s bytes=%s", self.path, seq, size)


def saved_clock_ms(path: Path) -> int | None:
    data = StateFile(path).read()
    return None if data is None else int(data["clock_ms"])
