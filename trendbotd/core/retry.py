"""The one retry primitive: bounded in attempts and in time, explicit about what it retries.

Pure: it waits through an injected ``Clock`` and reports each wait to an optional callback
(the caller logs it). In the style of stamina: the errors to retry (``on``) have no default,
and every retry is bounded by ``attempts`` and ``deadline_s``.

Each request is retried at exactly one level; nested retries multiply silently. The levels
in the daemon:
- an exchange read (``adapters/ccxt_calls.py``) retries transient errors with
  ``DEFAULT_READ_RETRY`` (below); the tick's and the position sync's re-reads call it as is;
- the startup sync re-runs a whole step until its deadline, and the reads inside it run with
  ``RetryPolicy.NO_RETRY`` (one request each, ``Exchange.reads_tried_once``);
- an order is never retried blindly: one send, then bounded queries by client id.

Worst cases, from these bounds (round trips and ccxt's own request timeout come on top):
- One read with ``DEFAULT_READ_RETRY``: at most 4 requests, 0.25 + 0.5 + 1.0 s apart
  (longer only when the exchange's Retry-After asks for it), and no try starts later than
  10 s after the first. The clock measurement is ``clock_samples`` such reads.
- One order (``trading/executor.py``, ``ExecutorPolicy.from_config``, as it stands): the
  create request is sent once and never retried blindly; it is sent again with the same
  client id only when the exchange refused it unexecuted (429, -1021) or confirmed it
  absent, at most ``max_sends`` = 3 times per intent. An unknown outcome is resolved by up
  to ``query_attempts`` = 3 queries by client id with pauses of 1, 2 and 4 s; each query is
  one read as above (the executor's rounds still sit on top of the read's own retry), so
  one resolution costs at most 3 x 4 = 12 requests and 3 x 10 + 7 = 37 s, plus up to 3
  waits of the recvWindow + 1 s (6 s by default) before "absent" is believed. An
  acknowledged market order is then asked for its fill up to ``fill_polls`` = 5 times
  (pauses 0.1 to 1.6 s, 3.1 s in all), each ask one such resolution at worst.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from trendbotd.core.clock import Clock

__all__ = ["DEFAULT_READ_RETRY", "RetryPolicy", "call_with_retry"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry: all four bounds explicit, no defaults.

    ``attempts`` counts every try including the first; ``deadline_s`` is measured from the
    start of the first try: no new try starts after it (a wait that would end past it is not
    taken, the last error is raised instead). Waits double from ``first_delay_s`` up to
    ``max_delay_s``, but never end before a server's Retry-After.
    """

    attempts: int
    deadline_s: float
    first_delay_s: float
    max_delay_s: float

    NO_RETRY: ClassVar[RetryPolicy]

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy: attempts must be at least 1")
        if self.first_delay_s < 0 or self.max_delay_s < self.first_delay_s:
            raise ValueError("RetryPolicy: 0 <= first_delay_s <= max_delay_s")
        if self.deadline_s < 0:
            raise ValueError("RetryPolicy: deadline_s must not be negative")

    def delay_s(self, attempt: int, *, retry_after_s: float | None = None) -> float:
        """Wait after try number ``attempt`` failed; never shorter than ``retry_after_s``."""
        delay = min(self.max_delay_s, self.first_delay_s * 2.0 ** (attempt - 1))
        return max(delay, retry_after_s or 0.0)


RetryPolicy.NO_RETRY = RetryPolicy(attempts=1, deadline_s=0.0, first_delay_s=0.0, max_delay_s=0.0)

# Exchange reads: 4 tries, 0.25 / 0.5 / 1 s apart, none started after 10 s.
DEFAULT_READ_RETRY = RetryPolicy(attempts=4, deadline_s=10.0, first_delay_s=0.25, max_delay_s=4.0)


def call_with_retry(
    fn: Callable[[], T],
    *,
    on: tuple[type[BaseException], ...],
    policy: RetryPolicy,
    clock: Clock,
    retry_after_s: Callable[[BaseException], float | None] | None = None,
    on_wait: Callable[[int, float, BaseException], None] | None = None,
    not_on: tuple[type[BaseException], ...] = (),
    last_try_at_deadline: bool = False,
) -> T:
    """Call ``fn`` until it returns, retrying only the errors in ``on``.

    An error not in ``on``, or also in ``not_on`` (a subclass that retrying cannot help),
    propagates at once. After the last attempt, or when the next wait would start a try past
    ``policy.deadline_s``, the last error propagates unchanged; with
    ``last_try_at_deadline`` such a wait is cut to end at the deadline for one last try
    instead, unless the server's Retry-After forbids it. ``retry_after_s`` reads that
    requested wait from an error (a wait is never shorter); ``on_wait(attempt, delay_s,
    error)`` is called before each wait.
    """
    started_ms = clock.now_ms()
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except not_on:
            raise
        except on as error:
            if attempt >= policy.attempts:
                raise
            hint = retry_after_s(error) if retry_after_s is not None else None
            delay = policy.delay_s(attempt, retry_after_s=hint)
            left_s = policy.deadline_s - (clock.now_ms() - started_ms) / 1000
            if last_try_at_deadline and left_s > 0 and (hint or 0.0) <= left_s:
                delay = min(delay, left_s)
            if delay > left_s:
                raise
            if on_wait is not None:
                on_wait(attempt, delay, error)
            clock.sleep(delay)
