"""Fault injection: make chosen requests fail the ways a real exchange and network do."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = (
    "error",
    "http_status",
    "delay",
    "drop_before",
    "drop_after",
    "timeout",
    "rate_limit",
    "error_after",
    "partial_fill",
)


@dataclass(slots=True)
class Fault:
    """One rule. ``method``/``path`` ``None`` match anything; a path ending in ``*`` is a
    prefix. ``times`` is how many matching requests it hits (``None``: all), after letting
    ``skip`` matching requests through untouched. ``match`` filters on request params.

    kinds: ``error`` (binance_code, http_status, msg), ``http_status`` (http_status or
    status, body text; default 503),
    ``delay`` (delay_ms, then the request runs normally), ``drop_before`` (connection
    closed, request not executed), ``drop_after`` (executed, connection closed without a
    reply), ``timeout`` (executed, reply withheld for delay_ms), ``rate_limit`` (429 -1003),
    ``error_after`` (executed, then answered with the error: binance_code, http_status, msg;
    Binance's -1001/-1007 "execution status unknown"), ``partial_fill`` (a MARKET order
    fills only ``fill_qty``, the rest EXPIRES, as when the book runs out of liquidity).
    """

    method: str | None = None
    path: str | None = None
    kind: str = "error"
    times: int | None = 1
    skip: int = 0
    binance_code: int = -1000
    http_status: int | None = None
    status: int | None = None  # alias of http_status for the http_status kind
    msg: str = ""
    body: str = ""
    delay_ms: int = 0
    fill_qty: str = ""  # partial_fill: the quantity that fills (a decimal string)
    match: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"fault kind must be one of {KINDS}, not {self.kind!r}")
        if self.kind == "partial_fill" and not self.fill_qty:
            raise ValueError("a partial_fill fault needs fill_qty")

    def matches(self, method: str, path: str, params: Mapping[str, str]) -> bool:
        if self.method is not None and self.method.upper() != method:
            return False
        if self.path is not None:
            if self.path.endswith("*"):
                if not path.startswith(self.path[:-1]):
                    return False
            elif self.path != path:
                return False
        return all(params.get(k) == str(v) for k, v in self.match.items())

    def reply_status(self) -> int:
        if self.http_status is not None:
            return self.http_status
        if self.status is not None:
            return self.status
        return {"error": 400, "http_status": 503, "rate_limit": 429, "error_after": 503}.get(
            self.kind, 200
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["match"] = dict(self.match)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class FaultSet:
    """The active rules; the first one that matches a request fires (and is used up)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[list[Any]] = []  # [fault, skips_left, hits_left]

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._rules.append([fault, fault.skip, fault.times])
        return fault

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def active(self) -> list[Fault]:
        with self._lock:
            return [rule[0] for rule in self._rules]

    def take(self, method: str, path: str, params: Mapping[str, str]) -> Fault | None:
        with self._lock:
            for rule in self._rules:
                fault: Fault = rule[0]
                if not fault.matches(method, path, params):
                    continue
                if rule[1] > 0:
                    rule[1] -= 1
                    continue
                if rule[2] is not None:
                    rule[2] -= 1
                    if rule[2] <= 0:
                        self._rules.remove(rule)
                return fault
            return None
