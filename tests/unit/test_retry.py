"""The retry primitive: attempts, deadline, Retry-After and the errors it retries."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from trendbotd.core.clock import ManualClock
from trendbotd.core.retry import DEFAULT_READ_RETRY, RetryPolicy, call_with_retry


class FlakyError(Exception):
    def __init__(self, retry_after_s: float | None = None) -> None:
        super().__init__("flaky")
        self.retry_after_s = retry_after_s


class FatalError(Exception):
    pass


@dataclass
class Script:
    """Raises the scripted errors in turn, then returns "ok"; records when each try ran."""

    clock: ManualClock
    errors: list[BaseException]
    tries_at_ms: list[int] = field(default_factory=list)

    def __call__(self) -> str:
        self.tries_at_ms.append(self.clock.now_ms())
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def _hint(error: BaseException) -> float | None:
    return error.retry_after_s if isinstance(error, FlakyError) else None


POLICY = RetryPolicy(attempts=4, deadline_s=10.0, first_delay_s=0.5, max_delay_s=3.0)


def test_delays_double_up_to_the_cap_and_never_undercut_retry_after() -> None:
    p = RetryPolicy(attempts=5, deadline_s=10, first_delay_s=0.5, max_delay_s=3)
    assert [p.delay_s(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 3.0]
    assert p.delay_s(1, retry_after_s=5) == 5  # beyond the cap: the server decides
    assert p.delay_s(3, retry_after_s=0.1) == 2.0


@pytest.mark.parametrize(
    ("attempts", "first", "maximum", "deadline"),
    [(0, 0.1, 1, 1), (1, -0.1, 1, 1), (1, 2, 1, 1), (1, 0.1, 1, -1)],
)
def test_policy_rejects_unbounded_or_inverted_values(
    attempts: int, first: float, maximum: float, deadline: float
) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(
            attempts=attempts, deadline_s=deadline, first_delay_s=first, max_delay_s=maximum
        )


@pytest.mark.parametrize(
    ("failures", "policy", "tries_at_ms", "succeeds"),
    [
        (0, POLICY, [0], True),
        (1, POLICY, [0, 500], True),
        (3, POLICY, [0, 500, 1500, 3500], True),
        (4, POLICY, [0, 500, 1500, 3500], False),  # attempts used up
        (9, RetryPolicy.NO_RETRY, [0], False),
        # the third try would start at 3 s, past the deadline: it is not made
        (
            9,
            RetryPolicy(attempts=9, deadline_s=2.5, first_delay_s=1, max_delay_s=8),
            [0, 1000],
            False,
        ),
        (9, DEFAULT_READ_RETRY, [0, 250, 750, 1750], False),
    ],
)
def test_attempts_and_deadline_bound_the_tries(
    failures: int, policy: RetryPolicy, tries_at_ms: list[int], succeeds: bool
) -> None:
    clock = ManualClock()
    errors: list[BaseException] = [FlakyError() for _ in range(failures)]
    fn = Script(clock, errors)
    if succeeds:
        assert call_with_retry(fn, on=(FlakyError,), policy=policy, clock=clock) == "ok"
    else:
        with pytest.raises(FlakyError):
            call_with_retry(fn, on=(FlakyError,), policy=policy, clock=clock)
    assert fn.tries_at_ms == tries_at_ms


def test_the_last_error_propagates_unchanged() -> None:
    clock = ManualClock()
    last = FlakyError()
    fn = Script(clock, [FlakyError(), last])
    policy = RetryPolicy(attempts=2, deadline_s=5, first_delay_s=0.1, max_delay_s=0.1)
    with pytest.raises(FlakyError) as raised:
        call_with_retry(fn, on=(FlakyError,), policy=policy, clock=clock)
    assert raised.value is last


def test_an_error_not_in_on_propagates_at_once() -> None:
    clock = ManualClock()
    fn = Script(clock, [FlakyError(), FatalError("no"), FlakyError()])
    with pytest.raises(FatalError):
        call_with_retry(fn, on=(FlakyError,), policy=POLICY, clock=clock)
    assert fn.tries_at_ms == [0, 500]


def test_retry_after_is_never_shortened_and_reported_before_each_wait() -> None:
    clock = ManualClock()
    waits: list[tuple[int, float]] = []
    fn = Script(clock, [FlakyError(retry_after_s=4.0), FlakyError(retry_after_s=0.1)])
    result = call_with_retry(
        fn,
        on=(FlakyError,),
        policy=POLICY,
        clock=clock,
        retry_after_s=_hint,
        on_wait=lambda attempt, delay, error: waits.append((attempt, delay)),
    )
    assert result == "ok"
    assert waits == [(1, 4.0), (2, 1.0)]
    assert fn.tries_at_ms == [0, 4000, 5000]


def test_a_retry_after_past_the_deadline_gives_up_instead_of_waiting_less() -> None:
    clock = ManualClock()
    fn = Script(clock, [FlakyError(retry_after_s=30.0)])
    with pytest.raises(FlakyError):
        call_with_retry(fn, on=(FlakyError,), policy=POLICY, clock=clock, retry_after_s=_hint)
    assert fn.tries_at_ms == [0]
    assert clock.now_ms() == 0  # no wait was taken


def test_time_spent_inside_the_call_counts_against_the_deadline() -> None:
    clock = ManualClock()
    tries: list[int] = []

    def slow() -> str:
        tries.append(clock.now_ms())
        clock.advance(5000)  # a request that takes 5 s to fail
        raise FlakyError()

    with pytest.raises(FlakyError):
        call_with_retry(slow, on=(FlakyError,), policy=POLICY, clock=clock)
    assert tries == [0, 5500]  # a third try would start at 10.5 s + 1 s: past the deadline


class HeldError(FlakyError):
    """A subclass of a retried error that retrying cannot help."""


def test_not_on_excludes_a_subclass_of_a_retried_error() -> None:
    clock = ManualClock()
    fn = Script(clock, [FlakyError(), HeldError(), FlakyError()])
    with pytest.raises(HeldError):
        call_with_retry(fn, on=(FlakyError,), not_on=(HeldError,), policy=POLICY, clock=clock)
    assert fn.tries_at_ms == [0, 500]


@pytest.mark.parametrize(
    ("errors", "tries_at_ms"),
    [
        # waits 1, 2, 4, then 8 is cut to the 3 s left: a last try at the deadline
        ([FlakyError() for _ in range(9)], [0, 1000, 3000, 7000, 10_000]),
        # a Retry-After past the deadline is not cut: no last try
        ([FlakyError(), FlakyError(retry_after_s=20)], [0, 1000]),
        # a Retry-After that fits is honoured, then the backoff is cut to the deadline
        ([FlakyError(retry_after_s=6), *(FlakyError() for _ in range(3))], [0, 6000, 8000, 10_000]),
    ],
)
def test_last_try_at_deadline_cuts_the_backoff_not_retry_after(
    errors: list[BaseException], tries_at_ms: list[int]
) -> None:
    clock = ManualClock()
    fn = Script(clock, errors)
    policy = RetryPolicy(attempts=99, deadline_s=10, first_delay_s=1, max_delay_s=8)
    with pytest.raises(FlakyError):
        call_with_retry(
            fn,
            on=(FlakyError,),
            policy=policy,
            clock=clock,
            retry_after_s=_hint,
            last_try_at_deadline=True,
        )
    assert fn.tries_at_ms == tries_at_ms
