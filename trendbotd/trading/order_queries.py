"""Questions the order path asks the exchange, and the pauses between them.

A leaf of the order path (``trading/order_flow.py`` -> ``trading/executor.py`` -> here):
it reads, waits and answers with a value; it never writes the journal and never calls
back into the executor. What the answers mean for an intent is decided by the executor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

from trendbotd.config import Config
from trendbotd.core.absence import (
    DOUBT_SETTLE_INTERVALS,
    AbsenceFacts,
    AbsentVerdict,
    judge_absent,
    unexplained,
)
from trendbotd.core.clock import Clock
from trendbotd.core.domain import ZERO, Order
from trendbotd.core.ports import Exchange
from trendbotd.core.records import Intent
from trendbotd.core.retry import RetryPolicy, call_with_retry
from trendbotd.errors import ClockSkewError, ExchangeAuthError, ExchangeError, RateLimitedError

logger = logging.getLogger(__name__)

T = TypeVar("T")
_MAX_SETTLE_WAITS = 3  # a clock that does not move must not make us wait forever


@dataclass(frozen=True, slots=True)
class ExecutorPolicy:
    """Every retry is bounded; no field has a silent default."""

    query_attempts: int  # queries by client id before an outcome stays UNKNOWN
    query_backoff_s: float  # first pause between failed queries; doubles up to max_backoff_s
    max_backoff_s: float
    absent_settle_ms: int  # "absent" counts only this long after the request left
    max_sends: int  # requests per intent (same client id), counted across restarts
    entry_resend_window_ms: int  # an absent entry is re-sent only this soon after the decision
    fill_polls: int  # queries for the fill of an acknowledged market order
    max_rate_limit_wait_s: float  # a longer Retry-After gives up on the intent

    @classmethod
    def from_config(cls, config: Config, *, recv_window_ms: int | None = None) -> ExecutorPolicy:
        """``recv_window_ms``: the window the adapter really signs with, if it differs from
        the config's (paper mode scales it): a request can be accepted until it expires,
        so "absent" is believed only after it."""
        window = config.exchange.recv_window_ms if recv_window_ms is None else recv_window_ms
        # The adapter already retries each read (bounded); these are rounds on top of it.
        return cls(
            query_attempts=3,
            query_backoff_s=1.0,
            max_backoff_s=8.0,
            absent_settle_ms=window + 1000,
            max_sends=3,
            entry_resend_window_ms=60_000,
            fill_polls=5,
            max_rate_limit_wait_s=30.0,
        )

    def read_retry(self) -> RetryPolicy:
        """The rounds of ``read_with_retry``: ``query_attempts`` tries, waits doubling from
        ``query_backoff_s``; the deadline admits every wait (each at most the rate limit cap)
        with one cap to spare for the reads themselves."""
        return RetryPolicy(
            attempts=self.query_attempts,
            deadline_s=self.query_attempts * self.max_rate_limit_wait_s,
            first_delay_s=self.query_backoff_s,
            max_delay_s=self.max_backoff_s,
        )


@dataclass(frozen=True, slots=True)
class Lookup:
    order: Order | None
    absent: bool  # the exchange said "no such order" (and, if asked, the request settled)


@dataclass(frozen=True, slots=True)
class Doubt:
    """What the position says about an entry the exchange calls absent: the order found
    late, a reason to give up (abandon, never re-send), or ``unknown`` (stay UNKNOWN).
    All empty: the absence is believed."""

    order: Order | None = None
    give_up: str | None = None
    unknown: bool = False


BELIEVED = Doubt()


class OrderQueries:
    def __init__(
        self,
        *,
        exchange: Exchange,
        clock: Clock,
        policy: ExecutorPolicy,
        waiting: Callable[[float], None] | None,
    ) -> None:
        """``waiting(seconds)`` is told before every pause (watchdog / start-timeout)."""
        self.exchange = exchange
        self.clock = clock
        self.policy = policy
        self.waiting = waiting

    def pause(self, seconds: float, why: str) -> None:
        """Sleep on the executor's clock, telling ``waiting`` first."""
        if seconds <= 0:
            return
        logger.debug("order.wait seconds=%.2f why=%s", seconds, why)
        if self.waiting is not None:
            self.waiting(seconds)
        self.clock.sleep(seconds)

    def remeasure_clock(self) -> None:
        try:
            offset = self.exchange.measure_clock()
            logger.info("clock.remeasured offset_ms=%s", offset.offset_ms)
        except ExchangeError as e:
            logger.warning("clock.remeasure_failed error=%s", e)
            self.pause(self.policy.query_backoff_s, "clock_retry")

    def read_with_retry(self, what: str, read: Callable[[], T]) -> T:
        """A read-only exchange call with bounded retries (``ExecutorPolicy.read_retry``);
        the last error propagates. A skewed clock is measured again before the wait."""
        cap = self.policy.max_rate_limit_wait_s

        def retry_after(e: BaseException) -> float | None:
            # the exchange (or the weight budget) said how long: sooner is futile
            if isinstance(e, RateLimitedError) and e.retry_after_s is not None:
                return min(e.retry_after_s, cap)
            return None

        def on_wait(attempt: int, delay_s: float, e: BaseException) -> None:
            logger.warning("exchange.read_failed what=%s attempt=%s error=%s", what, attempt, e)
            if isinstance(e, ClockSkewError):
                self.remeasure_clock()
            if self.waiting is not None:
                self.waiting(delay_s)

        return call_with_retry(
            read,
            on=(ExchangeError,),
            not_on=(ExchangeAuthError,),
            policy=self.policy.read_retry(),
            clock=self.clock,
            retry_after_s=retry_after,
            on_wait=on_wait,
        )

    def lookup(self, intent: Intent, *, confirm_absent: bool) -> Lookup:
        """Query by client id with bounded retries. Only the port's ``None`` (the exchange
        itself said "no such order") counts as absent, and with ``confirm_absent`` only once
        the last request is older than the settle time.

        A loop, not ``call_with_retry``: it retries errors AND polls for a state (waiting
        out the settle time is not a failed query), and a skewed clock is measured again
        and asked at once, without a wait."""
        delay = self.policy.query_backoff_s
        failures = settles = 0
        while failures < self.policy.query_attempts and settles <= _MAX_SETTLE_WAITS:
            try:
                order = self.exchange.fetch_order_by_client_id(
                    intent.symbol, intent.client_order_id, conditional=intent.conditional
                )
            except ExchangeAuthError:
                raise
            except ClockSkewError as e:
                failures += 1
                logger.warning("order.query_skew cid=%s error=%s", intent.client_order_id, e)
                self.remeasure_clock()
                continue
            except ExchangeError as e:
                failures += 1
                logger.warning("order.query_failed cid=%s error=%s", intent.client_order_id, e)
                wait = delay
                if isinstance(e, RateLimitedError) and e.retry_after_s is not None:
                    wait = min(e.retry_after_s, self.policy.max_rate_limit_wait_s)
                self.pause(wait, "query_retry")
                delay = min(delay * 2, self.policy.max_backoff_s)
                continue
            if order is not None:
                return Lookup(order, absent=False)
            settle_left = self._settle_left_ms(intent)
            if not confirm_absent or settle_left <= 0:
                return Lookup(None, absent=True)
            # Too early to believe "absent": a delayed copy could still arrive. Wait out
            # the exchange's recvWindow, then ask again (the clock has moved past it).
            settles += 1
            self.pause(settle_left / 1000, "absent_settle")
        return Lookup(None, absent=False)

    def _settle_left_ms(self, intent: Intent) -> int:
        if intent.sent_ms is None:
            return 0
        return intent.sent_ms + self.policy.absent_settle_ms - self.clock.now_ms()

    def doubt_absence(self, intent: Intent, *, expected: Callable[[], Decimal]) -> Doubt:
        """An entry said to be absent, checked against the position (``core.absence``).
        ``expected()``: the journal's expected position on the symbol, read each round.
        A poll for a state (the position agreeing), not a retry: stays a loop."""
        cid = intent.client_order_id
        for _ in range(DOUBT_SETTLE_INTERVALS + 1):
            facts = AbsenceFacts(
                side=intent.side,
                expected=expected(),
                actual=self._position_or_none(intent.symbol),
                sent_ms=intent.sent_ms if intent.sent_ms is not None else intent.created_ms,
                now_ms=self.clock.now_ms(),
                settle_ms=self.policy.absent_settle_ms,
            )
            verdict = judge_absent(facts)
            if verdict is AbsentVerdict.BELIEVE:
                return BELIEVED
            why = (
                "position unreadable"
                if facts.actual is None
                else f"position {facts.actual} exceeds the expected {facts.expected} "
                f"by {unexplained(facts)}"
            )
            if verdict is AbsentVerdict.GIVE_UP:
                logger.error("order.absent_unexplained cid=%s %s: abandoned, not re-sent", cid, why)
                return Doubt(give_up=f"absent in queries but {why}; not re-sent")
            if verdict is AbsentVerdict.UNKNOWN:
                break
            logger.warning("order.absent_doubted cid=%s %s: asking again", cid, why)
            self.pause(self.policy.absent_settle_ms / 1000, "absent_doubt")
            found = self.lookup(intent, confirm_absent=True)
            if found.order is not None:
                logger.info("order.resolved cid=%s found=%s late", cid, found.order.status)
                return Doubt(order=found.order)
            if not found.absent:
                break
        logger.error("order.absent_doubted cid=%s: outcome stays unknown, asked again", cid)
        return Doubt(unknown=True)

    def _position_or_none(self, symbol: str) -> Decimal | None:
        try:
            found = self.exchange.fetch_positions([symbol])
        except ExchangeAuthError:
            raise
        except ExchangeError as e:
            logger.warning("order.position_unreadable symbol=%s error=%s", symbol, e)
            return None
        return sum((p.amount for p in found if p.symbol == symbol), ZERO)
