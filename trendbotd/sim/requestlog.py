"""The simulated exchange's record of the requests it received (tests read it back)."""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

MAX_RECORDED = 20_000


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    params: dict[str, str]
    accepted: bool  # executed and answered 2xx (drop_after/timeout count as accepted)
    at_ms: int  # server time
    status: int = 200
    used_weight: int = 0  # X-MBX-USED-WEIGHT-1M the answer carried (0: none, e.g. a fault)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RequestLog:
    """The latest ``MAX_RECORDED`` requests, stamped with the server's time."""

    def __init__(self, now_ms: Callable[[], int]) -> None:
        self._now_ms = now_ms
        self._entries: collections.deque[RecordedRequest] = collections.deque(maxlen=MAX_RECORDED)
        self._lock = threading.Lock()

    def record(
        self,
        method: str,
        path: str,
        params: Mapping[str, str],
        *,
        accepted: bool,
        status: int,
        used_weight: int = 0,
    ) -> None:
        entry = RecordedRequest(
            method, path, dict(params), accepted, self._now_ms(), status, used_weight
        )
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
