"""The account's re-entrant lock, with a hook for the moment its outermost holder lets go.

The state file is kept this way: the hook takes a snapshot while the lock is still held
(consistent, and cheap) and hands back the slow part, writing it to disk, which runs
right after the release. Every path that changes the account goes through this lock, so
none can forget to save, and a slow disk never holds up other requests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

AfterRelease = Callable[[], None]
ReleaseHook = Callable[[], AfterRelease | None]


class StateLock:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._depth = 0  # only the holder touches it
        self.on_release: ReleaseHook | None = None

    def __enter__(self) -> None:
        self._lock.acquire()
        self._depth += 1

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth:
            self._lock.release()
            return
        after: AfterRelease | None = None
        try:
            hook = self.on_release
            if hook is not None:
                after = hook()
        finally:
            self._lock.release()
        if after is not None:
            after()
