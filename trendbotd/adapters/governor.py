"""The request-weight governor: every request to the exchange asks it first.

``acquire`` waits (on the given clock) while the budget says so, at most ``max_wait_s``
in all; a longer wait raises RequestHeldError before anything is sent, carrying the wait
as Retry-After, so callers back off as they would after a 429 (startup retries later,
the executor keeps the order PENDING, a tick ends and the next one tries again).
``observe`` takes the exchange's counts and any 429/418 from each answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from trendbotd.adapters import weight_budget as budget
from trendbotd.adapters.budget_file import BudgetStore
from trendbotd.adapters.weight_budget import Admission, BudgetLimits, BudgetState, Priority
from trendbotd.core.clock import Clock
from trendbotd.errors import RequestHeldError

logger = logging.getLogger(__name__)

_HEADERS = {
    "weight": "x-mbx-used-weight-1m",
    "orders_10s": "x-mbx-order-count-10s",
    "orders_1m": "x-mbx-order-count-1m",
}


def header_int(headers: Mapping[str, Any] | None, name: str) -> int | None:
    """An integer header (case-insensitive), or None when absent or garbled."""
    if not headers:
        return None
    for key, value in headers.items():
        if str(key).lower() == name:
            try:
                return int(str(value).strip())
            except ValueError:
                return None
    return None


@dataclass(frozen=True, slots=True)
class GovernorSettings:
    limits: BudgetLimits
    store: BudgetStore  # LocalBudget, or SharedBudgetFile for every instance on the host
    max_wait_s: float  # longest in-line wait before a request is held back instead


class NullGovernor:
    """No budget: the simulator in paper mode, tests of other things."""

    def acquire(self, priority: Priority, *, weight: int, orders: int) -> int:
        return 0

    def observe(
        self, *, status: int, headers: Mapping[str, Any] | None, retry_after_s: float | None,
        sent_ms: int,
    ) -> None:  # fmt: skip
        return None


class WeightGovernor:
    def __init__(
        self,
        *,
        store: BudgetStore,
        limits: BudgetLimits,
        clock: Clock,
        max_wait_s: float,
        offset_ms: Callable[[], int] = lambda: 0,
    ) -> None:
        """``offset_ms``: the exchange clock minus ours, so windows match the exchange's."""
        if max_wait_s < 0:
            raise ValueError("max_wait_s must not be negative")
        self._store = store
        self._limits = limits
        self._clock = clock
        self._max_wait_ms = int(max_wait_s * 1000)
        self._offset_ms = offset_ms

    def _exchange_ms(self) -> int:
        return self._clock.now_ms() + self._offset_ms()

    def acquire(self, priority: Priority, *, weight: int, orders: int) -> int:
        """Wait until a request of this weight and priority may go; count it; return the
        exchange time it was let through (for ``observe``)."""
        waited_ms = 0
        while True:
            now = self._exchange_ms()

            def decide(state: BudgetState, now: int = now) -> tuple[Admission, BudgetState]:
                verdict = budget.admit(
                    state, priority=priority, weight=weight, orders=orders, now_ms=now,
                    limits=self._limits,
                )  # fmt: skip
                return verdict, verdict.state

            verdict = self._store.update(decide)
            if verdict.wait_ms <= 0:
                return now
            if waited_ms + verdict.wait_ms > self._max_wait_ms:
                logger.warning(
                    "ratelimit.held priority=%s weight=%s reason=%s wait_s=%.1f",
                    priority.name, weight, verdict.reason, verdict.wait_ms / 1000,
                )  # fmt: skip
                raise RequestHeldError(
                    f"held back by the weight budget ({verdict.reason}, "
                    f"{verdict.wait_ms / 1000:.1f}s), not sent",
                    retry_after_s=verdict.wait_ms / 1000,
                )
            logger.info(
                "ratelimit.wait priority=%s weight=%s reason=%s wait_s=%.2f",
                priority.name, weight, verdict.reason, verdict.wait_ms / 1000,
            )  # fmt: skip
            waited_ms += verdict.wait_ms
            self._clock.sleep(verdict.wait_ms / 1000)

    def observe(
        self, *, status: int, headers: Mapping[str, Any] | None, retry_after_s: float | None,
        sent_ms: int,
    ) -> None:  # fmt: skip
        """Record what one answer said: the exchange's counts, a 429 pause, a 418 ban."""
        now = self._exchange_ms()
        counts = {k: header_int(headers, h) for k, h in _HEADERS.items()}

        def record(state: BudgetState) -> tuple[None, BudgetState]:
            state = budget.observe(
                state, used_weight=counts["weight"], orders_10s=counts["orders_10s"],
                orders_1m=counts["orders_1m"], sent_ms=sent_ms, now_ms=now, limits=self._limits,
            )  # fmt: skip
            if status in (418, 429):
                state = budget.refused(
                    state, status=status, retry_after_s=retry_after_s, now_ms=now,
                    limits=self._limits,
                )  # fmt: skip
            return None, state

        self._store.update(record)
        if status == 418:
            logger.critical(
                "exchange.ip_banned retry_after_s=%s: every instance on this host waits",
                retry_after_s,
            )
        elif status == 429:
            logger.error("exchange.too_many_requests retry_after_s=%s", retry_after_s)
