"""The narrow interfaces the HTTP front and the /sim/ control API need of the simulated
exchange. ``server.py`` and ``control.py`` depend on these, never on ``exchange.py``,
which composes the parts and satisfies both."""

from __future__ import annotations

from typing import Any, Protocol

from trendbotd.sim.access import SimAccount
from trendbotd.sim.desk import OrderDesk
from trendbotd.sim.faults import FaultSet
from trendbotd.sim.ratelimit import WeightLimiter
from trendbotd.sim.requestlog import RequestLog
from trendbotd.sim.state import SimState


class ControlHandler(Protocol):
    def handle(self, method: str, path: str, query: str, body: str) -> tuple[int, Any]:
        """Answer one /sim/ request: (HTTP status, JSON-ready payload)."""
        ...


class HttpBackend(Protocol):
    """What ``SimHTTPServer`` serves: credentials, faults, rate limit, the request log,
    the account's routes and the control API."""

    api_key: str
    api_secret: str
    response_delay_ms: int
    faults: FaultSet
    limiter: WeightLimiter
    request_log: RequestLog
    control: ControlHandler
    state: SimState
    desk: OrderDesk

    def server_time_ms(self) -> int: ...


class ControlTarget(Protocol):
    """What ``ControlAPI`` drives: the account, faults, the request log and the clock."""

    state: SimState
    account: SimAccount
    faults: FaultSet
    request_log: RequestLog

    def set_clock_skew_ms(self, skew_ms: int) -> None: ...
    def advance_clock(self, ms: int) -> None: ...
