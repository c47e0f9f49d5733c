"""Startup sync: learn the exchange's truth before READY=1, or fail loudly.

Steps, in order, each announced through ``progress.step``: syncing time, checking account
mode, loading markets, syncing balance, syncing positions, syncing open orders. Each step
is retried with bounded backoff until ``deadline_ms`` (``progress.waiting`` before every
wait; the last wait is cut to end at the deadline for one last try, a Retry-After never);
a step that fails is never read as "flat" or "zero": past the deadline it raises
StartupSyncError naming the step and the last error. Credentials refused, an unsupported
account mode or a configuration problem raise at once: waiting will not fix them.

The step is the only level that retries here: its reads run inside
``exchange.reads_tried_once()``, one request each, so a failing read costs one request per
step attempt instead of the adapter's retries times the step's.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from trendbotd.core.clock import Clock
from trendbotd.core.domain import AccountMode, AccountSnapshot, ClockOffset
from trendbotd.core.ports import Exchange, StartupProgress
from trendbotd.core.retry import RetryPolicy, call_with_retry
from trendbotd.core.timesync import ClockGuard
from trendbotd.errors import (
    ClockNotSyncedError,
    ExchangeError,
    OperationalError,
    StartupSyncError,
    UnsupportedAccountModeError,
    retry_after_of,
)

__all__ = ["StartupBackoff", "StartupProgress", "sync_account"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Errors that mean "ask again later". OperationalError subclasses (auth, account mode,
# config) are excluded even when they are also ExchangeErrors.
_RETRYABLE: tuple[type[Exception], ...] = (ExchangeError, ClockNotSyncedError)


@dataclass(frozen=True, slots=True)
class StartupBackoff:
    """Wait between attempts of one step: doubling from ``first_s`` up to ``max_s``."""

    first_s: float = 0.5
    max_s: float = 10.0

    def __post_init__(self) -> None:
        if self.first_s <= 0 or self.max_s < self.first_s:
            raise ValueError("StartupBackoff: 0 < first_s <= max_s")

    def policy(self, *, deadline_s: float) -> RetryPolicy:
        """A step's retry policy: bounded by the deadline, and so in attempts too (every
        wait but the last lasts at least ``first_s``)."""
        deadline_s = max(0.0, deadline_s)
        return RetryPolicy(
            attempts=math.ceil(deadline_s / self.first_s) + 2,
            deadline_s=deadline_s,
            first_delay_s=self.first_s,
            max_delay_s=self.max_s,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Steps:
    progress: StartupProgress
    clock: Clock
    deadline_ms: int
    backoff: StartupBackoff

    def run(self, step: str, fetch: Callable[[], T]) -> T:
        self.progress.step(step)  # STATUS= and the log line
        tries = 0

        def attempt() -> T:
            nonlocal tries
            tries += 1
            return fetch()

        def wait(attempt: int, delay: float, error: BaseException) -> None:
            logger.warning(
                "startup.retry step=%s attempt=%s delay_s=%.2f error_class=%s error=%s",
                step,
                attempt,
                delay,
                type(error).__name__,
                error,
            )
            self.progress.waiting(delay)

        try:
            return call_with_retry(
                attempt,
                on=_RETRYABLE,
                not_on=(OperationalError,),  # needs a human; retrying cannot help
                policy=self.backoff.policy(
                    deadline_s=(self.deadline_ms - self.clock.now_ms()) / 1000
                ),
                clock=self.clock,
                retry_after_s=retry_after_of,
                on_wait=wait,
                last_try_at_deadline=True,
            )
        except _RETRYABLE as last:
            if isinstance(last, OperationalError):
                raise
            raise StartupSyncError(
                f"startup sync failed at step '{step}' after {tries} attempt(s): "
                f"{type(last).__name__}: {last}"
            ) from last


def sync_account(
    *,
    exchange: Exchange,
    symbols: Sequence[str],
    progress: StartupProgress,
    clock: Clock,
    deadline_ms: int,
    max_clock_offset_ms: int,
    backoff: StartupBackoff | None = None,
) -> AccountSnapshot:
    """Everything the loop needs to know before trading, all fetched successfully."""
    steps = _Steps(
        progress=progress, clock=clock, deadline_ms=deadline_ms, backoff=backoff or StartupBackoff()
    )
    # Age does not matter here: the offset is used right away.
    guard = ClockGuard(max_offset_ms=max_clock_offset_ms, max_age_ms=2**62)

    def measure_within_bound() -> ClockOffset:
        offset = exchange.measure_clock()
        guard.require(offset, now_ms=clock.now_ms())
        return offset

    def account_mode() -> AccountMode:
        mode = exchange.fetch_account_mode()
        if mode is not AccountMode.ONE_WAY:
            raise UnsupportedAccountModeError(
                f"the account is in {mode.value} position mode; the bot trades one-way mode "
                "only (switch off hedge mode in the futures preferences)"
            )
        return mode

    with exchange.reads_tried_once():
        offset = steps.run("syncing time", measure_within_bound)
        mode = steps.run("checking account mode", account_mode)
        markets = steps.run("loading markets", lambda: exchange.load_markets(symbols))
        balance = steps.run("syncing balance", exchange.fetch_balance)
        positions = steps.run("syncing positions", lambda: exchange.fetch_positions(symbols))
        orders = steps.run("syncing open orders", lambda: exchange.fetch_open_orders(symbols))
    snapshot = AccountSnapshot(
        taken_at_ms=clock.now_ms(),
        clock=offset,
        mode=mode,
        balance=balance,
        positions=tuple(positions),
        open_orders=tuple(orders),
        markets=markets,
    )
    logger.info(
        "startup.synced offset_ms=%s balance=%s positions=%s open_orders=%s conditional=%s",
        offset.offset_ms,
        balance.total,
        len(snapshot.positions),
        len(snapshot.open_orders),
        sum(1 for o in snapshot.open_orders if o.conditional),
    )
    return snapshot
