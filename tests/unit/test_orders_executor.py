"""OrderExecutor against an in-memory exchange: write-ahead, outcome-unknown handling,
bounded retries with the same client id, never two orders for one intent."""

from __future__ import annotations

from decimal import Decimal

import pytest
from orders_fakes import (
    ORDERS_POLICY,
    SYMBOL,
    T0,
    Bot,
    FakeExchange,
    creates,
    entry_spec,
    stop_spec,
)

from trendbotd.core.clock import ManualClock
from trendbotd.core.domain import Side
from trendbotd.core.records import IntentState, Purpose, TradingMode
from trendbotd.errors import (
    ClockNotSyncedError,
    ClockSkewError,
    DuplicateClientOrderIdError,
    ExchangeAuthError,
    InsufficientFundsError,
    OrderNotFoundError,
    OutcomeUnknownError,
    RateLimitedError,
    TransientExchangeError,
)
from trendbotd.journal.store import Journal
from trendbotd.trading.executor import EntryBlockedError, OrderExecutor

D = Decimal
entry = entry_spec


@pytest.fixture
def journal(bot: Bot) -> Journal:
    return bot.journal


def test_happy_entry_is_journalled_before_it_is_sent(
    executor: OrderExecutor, fake: FakeExchange, journal: Journal
) -> None:
    seen_states: list[IntentState] = []
    original = fake.create_order

    def spy(request):  # type: ignore[no-untyped-def]
        stored = journal.orders.get_intent(request.client_order_id)
        assert stored is not None  # write-ahead: the intent is durable before the request
        seen_states.append(stored.state)
        return original(request)

    fake.create_order = spy  # type: ignore[method-assign]
    done = executor.submit(entry())
    assert seen_states == [IntentState.SENT]
    assert done.state is IntentState.FILLED
    assert done.filled == D("0.010")
    assert done.attempts == 1
    assert journal.account.expected_positions() == {SYMBOL: D("0.010")}
    assert fake.accepted(done.client_order_id) == 1


def test_same_decision_twice_sends_one_order(executor: OrderExecutor, fake: FakeExchange) -> None:
    first = executor.submit(entry())
    again = executor.submit(entry())
    assert again.client_order_id == first.client_order_id
    assert again.state is IntentState.FILLED
    assert creates(fake) == [first.client_order_id]


@pytest.mark.parametrize(
    "error",
    [
        OutcomeUnknownError("connection reset"),
        TransientExchangeError("read timeout"),
        OutcomeUnknownError("503 -1001 execution status unknown"),
    ],
)
def test_reply_lost_after_acceptance_is_adopted_not_resent(
    executor: OrderExecutor, fake: FakeExchange, error: Exception
) -> None:
    fake.fault("create_order", error, when="after")
    done = executor.submit(entry())
    assert done.state is IntentState.FILLED
    assert fake.accepted(done.client_order_id) == 1
    assert creates(fake) == [done.client_order_id]  # queried, never re-sent


def test_request_lost_before_acceptance_is_resent_with_the_same_id(
    executor: OrderExecutor, fake: FakeExchange, clock: ManualClock
) -> None:
    fake.fault("create_order", OutcomeUnknownError("connection reset"), when="before")
    done = executor.submit(entry())
    assert done.state is IntentState.FILLED
    assert done.attempts == 2
    assert creates(fake) == [done.client_order_id, done.client_order_id]
    assert fake.accepted(done.client_order_id) == 1
    # "absent" was only believed once the first request was older than the settle time
    assert clock.now_ms() >= T0 + ORDERS_POLICY.absent_settle_ms


def test_unanswered_queries_leave_the_outcome_unknown_and_send_nothing_more(
    executor: OrderExecutor, fake: FakeExchange, journal: Journal
) -> None:
    fake.fault("create_order", OutcomeUnknownError("reset"), when="after")
    fake.fault("fetch_order", TransientExchangeError("502"), times=ORDERS_POLICY.query_attempts)
    done = executor.submit(entry())
    assert done.state is IntentState.UNKNOWN
    assert len(creates(fake)) == 1
    # next time the same decision comes round it is queried, not re-sent
    later = executor.submit(entry())
    assert later.state is IntentState.FILLED
    assert len(creates(fake)) == 1
    assert journal.account.expected_positions() == {SYMBOL: D("0.010")}


def test_query_retries_through_failures(executor: OrderExecutor, fake: FakeExchange) -> None:
    fake.fault("create_order", OutcomeUnknownError("reset"), when="after")
    fake.fault("fetch_order", TransientExchangeError("502"), times=2)
    fake.fault("fetch_order", ClockSkewError("-1021"), times=1)
    done = executor.submit(entry())
    assert done.state is IntentState.FILLED
    assert fake.clock_measures == 1
    assert len(creates(fake)) == 1


def test_duplicate_id_error_means_the_order_exists(
    executor: OrderExecutor, fake: FakeExchange
) -> None:
    fake.fault(
        "create_order",
        DuplicateClientOrderIdError("ClientOrderId is duplicated. (-4116)", code=-4116),
        when="after",
    )
    done = executor.submit(entry())
    assert done.state is IntentState.FILLED  # adopted, never treated as a rejection
    assert fake.accepted(done.client_order_id) == 1


def test_clock_skew_is_remeasured_and_resent_with_the_same_id(
    executor: OrderExecutor, fake: FakeExchange
) -> None:
    fake.fault("create_order", ClockSkewError("Timestamp outside recvWindow (-1021)"))
    done = executor.submit(entry())
    assert done.state is IntentState.FILLED
    assert fake.clock_measures == 1
    assert creates(fake) == [done.client_order_id] * 2
    assert fake.accepted(done.client_order_id) == 1


def test_rate_limit_waits_then_resends_same_id(
    fake: FakeExchange, journal: Journal, clock: ManualClock
) -> None:
    waits: list[float] = []
    executor = OrderExecutor(exchange=fake, journal=journal, clock=clock, instance="bot",
                             policy=ORDERS_POLICY, waiting=waits.append)  # fmt: skip
    fake.fault("create_order", RateLimitedError("429 -1003", retry_after_s=2.0))
    done = executor.submit(entry())
    assert done.state is IntentState.FILLED
    assert waits == [2.0]
    assert clock.now_ms() == T0 + 2000
    assert fake.accepted(done.client_order_id) == 1


def test_long_rate_limit_abandons_the_entry(executor: OrderExecutor, fake: FakeExchange) -> None:
    fake.fault("create_order", RateLimitedError("418 banned", retry_after_s=600))
    done = executor.submit(entry())
    assert done.state is IntentState.ABANDONED
    assert fake.orders == []


@pytest.mark.parametrize(
    "error",
    [InsufficientFundsError("Margin is insufficient. (-2019)", code=-2019)],
)
def test_refusals_are_final(executor: OrderExecutor, fake: FakeExchange, error: Exception) -> None:
    fake.fault("create_order", error)
    done = executor.submit(entry())
    assert done.state is IntentState.REJECTED
    assert "-2019" in (done.last_error or "")
    assert len(creates(fake)) == 1


def test_auth_failure_is_recorded_and_raised(
    executor: OrderExecutor, fake: FakeExchange, journal: Journal
) -> None:
    fake.fault("create_order", ExchangeAuthError("-2015 invalid key"))
    with pytest.raises(ExchangeAuthError):
        executor.submit(entry())
    (intent,) = journal.orders.intents_since(0)
    assert intent.state is IntentState.REJECTED


def test_sends_are_bounded(executor: OrderExecutor, fake: FakeExchange) -> None:
    fake.fault("create_order", OutcomeUnknownError("reset"), when="before", times=99)
    done = executor.submit(entry(purpose=Purpose.EXIT, reduce_only=True, protective_stop=None))
    assert done.state is IntentState.ABANDONED
    assert len(creates(fake)) == ORDERS_POLICY.max_sends
    assert fake.orders == []


def test_stale_entry_is_not_resent(
    executor: OrderExecutor, fake: FakeExchange, clock: ManualClock
) -> None:
    fake.fault("create_order", OutcomeUnknownError("reset"), when="before")
    fake.fault("fetch_order", TransientExchangeError("502"), times=ORDERS_POLICY.query_attempts)
    first = executor.submit(entry())
    assert first.state is IntentState.UNKNOWN
    clock.advance(ORDERS_POLICY.entry_resend_window_ms + 1)
    done = executor.submit(entry())
    assert done.state is IntentState.ABANDONED  # absent, and the signal is too old
    assert len(creates(fake)) == 1


def test_ack_only_market_order_is_polled_to_its_fill(
    executor: OrderExecutor, fake: FakeExchange
) -> None:
    fake.ack_only = True
    done = executor.submit(entry())
    assert done.state is IntentState.FILLED
    assert done.filled == D("0.010")


def test_entries_refused_outside_normal_mode(
    executor: OrderExecutor, fake: FakeExchange, journal: Journal
) -> None:
    journal.controls.set_mode(TradingMode.REDUCE_ONLY, reason="mismatch", now_ms=T0)
    with pytest.raises(EntryBlockedError, match="reduce_only"):
        executor.submit(entry())
    assert journal.orders.intents_since(0) == []
    fake.positions[SYMBOL] = D("0.010")
    exit_ = executor.submit(
        entry(purpose=Purpose.EXIT, side=Side.SELL, reduce_only=True, protective_stop=None)
    )
    assert exit_.state is IntentState.FILLED


def test_cancel_adopts_what_the_order_became(
    executor: OrderExecutor, fake: FakeExchange, journal: Journal
) -> None:
    fake.positions[SYMBOL] = D("0.010")
    stop = executor.submit(stop_spec())
    assert stop.state is IntentState.ACKED
    fake.trigger_stops()
    gone = executor.cancel(stop, reason="test")
    assert gone.state is IntentState.FILLED  # it triggered before the cancel arrived
    assert [c for c in fake.calls if c[0] == "cancel"] == [("cancel", stop.client_order_id)]


def test_order_not_found_without_confirmation_is_not_absence(
    executor: OrderExecutor, fake: FakeExchange
) -> None:
    # The port returns None only for a confirmed "no such order"; an OrderNotFoundError
    # (e.g. a lagging replica) is a failed query and is asked again.
    fake.fault("create_order", OutcomeUnknownError("reset"), when="after")
    fake.fault("fetch_order", OrderNotFoundError("Order does not exist"), times=2)
    done = executor.submit(entry())
    assert done.state is IntentState.FILLED
    assert creates(fake) == [done.client_order_id]


def test_clock_not_synced_is_not_a_send(
    executor: OrderExecutor, fake: FakeExchange, journal: Journal
) -> None:
    fake.fault("create_order", ClockNotSyncedError("offset unknown"))
    done = executor.submit(entry())
    assert done.state is IntentState.FILLED
    assert fake.clock_measures == 1
    assert fake.accepted(done.client_order_id) == 1


def test_waiting_out_the_settle_time_is_not_a_failed_query(
    executor: OrderExecutor, fake: FakeExchange
) -> None:
    fake.fault("create_order", OutcomeUnknownError("reset"), when="before")
    fake.fault("fetch_order", TransientExchangeError("502"), times=ORDERS_POLICY.query_attempts - 1)
    done = executor.submit(entry())
    assert done.state is IntentState.FILLED  # absent confirmed after the wait, then re-sent
    assert done.attempts == 2


class FrozenClock(ManualClock):
    def sleep(self, seconds: float) -> None:
        return None  # time never moves


def test_a_clock_that_never_moves_cannot_make_it_wait_forever(
    fake: FakeExchange, journal: Journal
) -> None:
    executor = OrderExecutor(
        exchange=fake, journal=journal, clock=FrozenClock(T0), instance="bot", policy=ORDERS_POLICY
    )
    fake.fault("create_order", OutcomeUnknownError("reset"), when="before")
    done = executor.submit(entry())
    assert done.state is IntentState.UNKNOWN  # never believed absent, never re-sent
    assert len(creates(fake)) == 1
