"""How the ccxt adapter makes calls: retried reads, never-retried order changes, the clock
offset that signs requests and gates orders, and the rate-limit hold-off.

Worst case with the default read policy (``core.retry.DEFAULT_READ_RETRY``): one read is at
most 4 requests, 0.25 / 0.5 / 1 s apart unless a Retry-After asks longer, and no try starts
later than 10 s after the first; an order-changing call is one request.

No ccxt import: the client and its base exception class are handed in by ccxt_exchange.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from trendbotd.adapters.ccxt_errors import CODE_NO_SUCH_ORDER, facts_of, translate
from trendbotd.adapters.weight_budget import Priority
from trendbotd.core import telemetry
from trendbotd.core.clock import Clock
from trendbotd.core.domain import ClockOffset
from trendbotd.core.retry import RetryPolicy, call_with_retry
from trendbotd.core.timesync import ClockGuard, TimeSample, estimate_offset, signing_offset_ms
from trendbotd.errors import (
    ClockSkewError,
    ExchangeError,
    OrderNotFoundError,
    OutcomeUnknownError,
    RateLimitedError,
    RequestHeldError,
    TransientExchangeError,
    retry_after_of,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_RATE_LIMIT_HOLD_S = 1.0  # a 429 without Retry-After still pauses everything this long


class CcxtCalls:
    def __init__(
        self,
        *,
        client: Any,
        base_error: type[BaseException],
        clock: Clock,
        exchange_id: str,
        max_clock_offset_ms: int,
        clock_resync_s: float,
        clock_samples: int,
        read_retry: RetryPolicy,
        rate_limit: bool,
    ) -> None:
        if clock_samples < 1:
            raise ValueError("clock_samples must be at least 1")
        self._client = client
        self._base_error = base_error
        self._clock = clock
        self._id = exchange_id
        self._guard = ClockGuard(
            max_offset_ms=max_clock_offset_ms, max_age_ms=int(clock_resync_s * 1000)
        )
        self._clock_samples = clock_samples
        self._retry = read_retry
        self._rate_limit = rate_limit
        self._offset: ClockOffset | None = None
        self._hold_until_ms = 0  # no request before this (local ms) after a rate limit

    @property
    def clock_offset(self) -> ClockOffset | None:
        """The last measured offset (None before the first ``measure_clock``)."""
        return self._offset

    @property
    def clock_guard(self) -> ClockGuard:
        return self._guard

    def server_now_ms(self) -> int:
        """The exchange's time as far as we know it: local clock plus the measured offset."""
        return self._clock.now_ms() + (self._offset.offset_ms if self._offset else 0)

    def measure_clock(self) -> ClockOffset:
        raise NotImplementedError  # the adapter knows how to ask its exchange for the time

    @staticmethod
    def confirms_absence(error: OrderNotFoundError) -> bool:
        """True only when the exchange itself said "no such order" (-2013)."""
        cause = error.__cause__
        return cause is not None and facts_of(cause).code == CODE_NO_SUCH_ORDER

    # ----- clock -----

    def _measure(self, take_sample: Callable[[], tuple[int, int, int]]) -> ClockOffset:
        samples = [
            TimeSample(*self._read("fetch_time", take_sample, remeasure_on_skew=False))
            for _ in range(self._clock_samples)
        ]
        offset = estimate_offset(samples, measured_at_ms=self._clock.now_ms())
        self._offset = offset
        self._client.trendbot_offset_ms = signing_offset_ms(
            offset, recv_window_ms=int(self._client.options.get("recvWindow", 5000))
        )
        logger.info(
            "clock.measured offset_ms=%s uncertainty_ms=%s samples=%s",
            offset.offset_ms,
            offset.uncertainty_ms,
            offset.samples,
        )
        return offset

    def _remeasure_after_skew(self) -> None:
        try:
            self.measure_clock()
        except ExchangeError as e:
            logger.warning("clock.remeasure_failed error=%s", e)

    def keep_clock_fresh(self) -> None:
        """Re-measure once the offset is half its allowed age. Called between ticks, so the
        check before an order (``_ready_for_orders``) does not have to: it would hold the
        order back by the samples' round trips. A failure is logged; the check decides."""
        offset = self._offset
        if offset is None:
            return
        if self._clock.now_ms() - offset.measured_at_ms <= self._guard.max_age_ms // 2:
            return
        try:
            self.measure_clock()
        except ExchangeError as e:
            logger.warning("clock.refresh_failed error=%s", e)

    def _ready_for_orders(self, *, protective: bool) -> None:
        """Re-measure a stale offset, then refuse (ClockNotSyncedError) unless it is good.
        An offset that was never measured is not measured here: startup must do it.
        ``protective`` (stops, closes, cancels) passes an offset beyond the bound: see
        ``ClockGuard.check``."""
        if self._offset is not None and self._guard.is_stale(
            self._offset, now_ms=self._clock.now_ms()
        ):
            self.measure_clock()
        self._guard.require(self._offset, now_ms=self._clock.now_ms(), protective=protective)

    # ----- rate limits -----

    def _hold_remaining_s(self) -> float:
        return max(0, self._hold_until_ms - self._clock.now_ms()) / 1000

    def _note_rate_limit(self, error: RateLimitedError) -> None:
        hold = error.retry_after_s if error.retry_after_s is not None else DEFAULT_RATE_LIMIT_HOLD_S
        self._hold_until_ms = max(self._hold_until_ms, self._clock.now_ms() + int(hold * 1000))
        logger.warning("exchange.rate_limited hold_s=%.1f error=%s", hold, error)

    # ----- calls -----

    @contextmanager
    def reads_tried_once(self) -> Iterator[None]:
        """Within the block each read is one request (``RetryPolicy.NO_RETRY``): for a caller
        that retries whole steps itself (the startup sync), so that no request is retried at
        two levels. Not thread-safe, like the adapter."""
        policy = self._retry
        self._retry = RetryPolicy.NO_RETRY
        try:
            yield
        finally:
            self._retry = policy

    def _failed(
        self,
        exc: BaseException,
        *,
        what: str,
        order_changing: bool,
        cid: str | None,
        remeasure_on_skew: bool,
    ) -> ExchangeError:
        error = translate(exc, what=what, order_changing=order_changing, client_order_id=cid)
        facts = facts_of(exc)
        telemetry.exchange_error(code=facts.code, http_status=facts.http_status)
        if isinstance(error, RateLimitedError):
            self._note_rate_limit(error)
        elif isinstance(error, ClockSkewError) and remeasure_on_skew:
            logger.warning("clock.skew_rejected what=%s error=%s", what, error)
            self._remeasure_after_skew()
        return error

    def _read(
        self,
        what: str,
        call: Callable[[], T],
        *,
        remeasure_on_skew: bool = True,
        priority: Priority = Priority.SYNC,
    ) -> T:
        """Run a read, retrying transient failures within the read policy's bounds (see
        ``trendbotd.core.retry`` for the worst case: 4 requests, no try after 10 s).
        RequestHeldError (the weight budget said wait longer; nothing was sent) is waited
        out here like a Retry-After, within the same attempts and deadline, and raised as
        it is past them: the callers (the sync's re-reads, the tick) have no retry of their
        own. A rate-limit hold-off longer than the policy allows raises RateLimitedError
        without sending."""
        policy = self._retry
        started_ms = self._clock.now_ms()

        def once() -> T:
            held = self._hold_remaining_s()
            if held > 0:
                if (self._clock.now_ms() - started_ms) / 1000 + held > policy.deadline_s:
                    raise RateLimitedError(f"{what}: rate limited", retry_after_s=held)
                self._clock.sleep(held)
            self._client.trendbot_request = (priority, False)
            try:
                return call()
            except self._base_error as e:
                raise self._failed(
                    e,
                    what=what,
                    order_changing=False,
                    cid=None,
                    remeasure_on_skew=remeasure_on_skew,
                ) from e

        def log_retry(attempt: int, delay: float, error: BaseException) -> None:
            logger.warning(
                "exchange.read_retry what=%s attempt=%s delay_s=%.2f error=%s",
                what,
                attempt,
                delay,
                error,
            )

        return call_with_retry(
            once,
            on=(TransientExchangeError,),
            policy=policy,
            clock=self._clock,
            retry_after_s=retry_after_of,
            on_wait=log_retry,
        )

    def _change(
        self,
        what: str,
        cid: str,
        call: Callable[[], T],
        *,
        priority: Priority,
        new_order: bool,
        protective: bool,
    ) -> T:
        """Run an order-changing call exactly once: one request, never retried here (the
        executor re-sends only what was refused unexecuted, with the same client id; see
        ``trendbotd.core.retry`` for an order's worst case). ``priority`` and
        ``new_order`` tell the weight governor what the request is; ``protective`` (it
        cannot add exposure: reduce-only, a cancel) is sent while the host clock is off.

        Raised before anything is sent (safe to try again later): RateLimitedError (hold-off
        after a 429; RequestHeldError: the weight budget held it back), ClockNotSyncedError,
        and whatever a stale-offset re-measure raises.
        Raised after sending: the translated error; OutcomeUnknownError when it may have
        executed."""
        held = self._hold_remaining_s()
        if held > 0:
            raise RateLimitedError(f"{what}: rate limited, not sent", retry_after_s=held)
        self._ready_for_orders(protective=protective)
        self._client.trendbot_request = (priority, new_order)
        try:
            result = call()
        except RequestHeldError:
            logger.warning("order.held what=%s cid=%s priority=%s", what, cid, priority.name)
            raise
        except self._base_error as e:
            error = self._failed(e, what=what, order_changing=True, cid=cid, remeasure_on_skew=True)
            logger.warning(
                "order.call_failed what=%s cid=%s error_class=%s error=%s",
                what,
                cid,
                type(error).__name__,
                error,
            )
            raise error from e
        except Exception as e:
            # A failure inside ccxt after the request may have left (e.g. parsing the reply)
            # must not read as "not sent".
            logger.exception("order.call_crashed what=%s cid=%s", what, cid)
            raise OutcomeUnknownError(
                f"{what}: client failure after sending may have begun: {e!r}",
                client_order_id=cid,
            ) from e
        logger.info("order.call_ok what=%s cid=%s", what, cid)
        return result
