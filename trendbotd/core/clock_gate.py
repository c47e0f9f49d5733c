"""Whether the clock lets new orders out, re-checked around every tick of the loop.

The host clock can go wrong while the daemon runs (a VM resumed, NTP stepping, a bad
manual change), not only before startup. While the measured exchange clock offset is
beyond the bound, new orders (entries) are refused; protective orders (stops and closes
for positions that exist, cancels) still go out, stamped with the measured offset, which
is what the exchange checks (see ``ClockGuard.check``). Each change between refused and
allowed is logged once, not on every tick.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from trendbotd.core.timesync import ClockVerdict

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class ClockGate:
    refused: str | None = None  # why new orders are refused; None while they are allowed

    def update(self, verdict: ClockVerdict, *, offset_ms: int | None) -> str | None:
        """Take the latest verdict; log a transition; return the refusal reason or None."""
        if not verdict.ok and self.refused is None:
            logger.error(
                "clock.orders_refused reason=%s: new orders wait, stops and closes still go out",
                verdict.reason,
            )
        elif verdict.ok and self.refused is not None:
            logger.warning("clock.orders_allowed offset_ms=%s was=%s", offset_ms, self.refused)
        self.refused = None if verdict.ok else verdict.reason
        return self.refused

    def status(self, status: str) -> str:
        """The tick's STATUS= text, led by the refusal while there is one."""
        return status if self.refused is None else f"orders refused: {self.refused} | {status}"
