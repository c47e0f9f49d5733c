"""An entry the exchange says it does not know, while the position says it executed:
never re-sent, never abandoned early (the duplicate-entry hole of delayed visibility)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from orders_fakes import ORDERS_POLICY, SYMBOL, T0, Bot, FakeExchange, creates
from orders_fakes import entry_spec as entry

from trendbotd.core.absence import (
    DOUBT_SETTLE_INTERVALS,
    RESOLVE_LIMIT_MS,
    AbsenceFacts,
    AbsentVerdict,
    judge_absent,
    unexplained,
)
from trendbotd.core.clock import ManualClock
from trendbotd.core.domain import (
    Side,
)
from trendbotd.core.records import IntentState, Purpose, TradingMode
from trendbotd.errors import OutcomeUnknownError, TransientExchangeError
from trendbotd.trading.executor import OrderExecutor

D = Decimal
SETTLE = ORDERS_POLICY.absent_settle_ms


def facts(
    *, side: Side = Side.BUY, expected: str = "0", actual: str | None, age_ms: int
) -> AbsenceFacts:
    return AbsenceFacts(
        side=side,
        expected=D(expected),
        actual=None if actual is None else D(actual),
        sent_ms=T0,
        now_ms=T0 + age_ms,
        settle_ms=SETTLE,
    )


@pytest.mark.parametrize(
    ("case", "verdict"),
    [
        (facts(actual="0", age_ms=SETTLE), AbsentVerdict.BELIEVE),
        (facts(expected="0.01", actual="0.01", age_ms=SETTLE), AbsentVerdict.BELIEVE),
        # less on the entry's side (a stop triggered): the entry did not add anything
        (facts(expected="0.01", actual="0", age_ms=SETTLE), AbsentVerdict.BELIEVE),
        (facts(side=Side.SELL, actual="0.01", age_ms=SETTLE), AbsentVerdict.BELIEVE),
        (facts(actual="0.01", age_ms=SETTLE), AbsentVerdict.WAIT),
        (facts(side=Side.SELL, actual="-0.01", age_ms=SETTLE), AbsentVerdict.WAIT),
        (facts(actual=None, age_ms=SETTLE), AbsentVerdict.WAIT),
        (facts(actual="0.01", age_ms=SETTLE * (1 + DOUBT_SETTLE_INTERVALS)), AbsentVerdict.UNKNOWN),
        (facts(actual="0.01", age_ms=RESOLVE_LIMIT_MS), AbsentVerdict.GIVE_UP),
        (facts(actual=None, age_ms=RESOLVE_LIMIT_MS), AbsentVerdict.GIVE_UP),
    ],
)
def test_judge_absent(case: AbsenceFacts, verdict: AbsentVerdict) -> None:
    assert judge_absent(case) is verdict


def test_unexplained_is_only_extra_position_on_the_entry_side() -> None:
    assert unexplained(facts(expected="0.01", actual="0.025", age_ms=0)) == D("0.015")
    assert unexplained(facts(side=Side.SELL, expected="0.01", actual="-0.01", age_ms=0)) == D(
        "0.02"
    )
    assert unexplained(facts(actual=None, age_ms=0)) == 0


def _cid(executor: OrderExecutor) -> str:
    return executor.client_id(entry())


def test_entry_visible_late_is_found_not_resent(
    bot: Bot, executor: OrderExecutor, fake: FakeExchange, clock: ManualClock
) -> None:
    journal = bot.journal
    fake.fault("create_order", OutcomeUnknownError("-1007 timeout"), when="after")
    fake.hidden[_cid(executor)] = 2  # the settle-time query and one more answer -2013
    done = executor.submit(entry())
    assert done.state is IntentState.FILLED
    assert creates(fake) == [done.client_order_id]  # never re-sent
    assert fake.accepted(done.client_order_id) == 1
    assert journal.account.expected_positions() == {SYMBOL: D("0.010")}
    assert clock.now_ms() - T0 < SETTLE * (2 + DOUBT_SETTLE_INTERVALS)


def test_entry_invisible_for_long_stays_unknown_then_is_abandoned_never_resent(
    executor: OrderExecutor, fake: FakeExchange, clock: ManualClock
) -> None:
    fake.fault("create_order", OutcomeUnknownError("-1001 internal error"), when="after")
    cid = _cid(executor)
    fake.hidden[cid] = 10_000
    done = executor.submit(entry())
    assert done.state is IntentState.UNKNOWN
    assert "position" in (done.last_error or "")
    assert creates(fake) == [cid]
    # each later sync asks again (without the waits), the symbol stays untraded
    clock.advance(10_000)
    again = executor.drive(done, allow_resend=True)
    assert again.state is IntentState.UNKNOWN
    assert creates(fake) == [cid]
    clock.advance(RESOLVE_LIMIT_MS)
    last = executor.drive(again, allow_resend=True)
    assert last.state is IntentState.ABANDONED
    assert "not re-sent" in (last.last_error or "")
    assert creates(fake) == [cid]
    assert fake.accepted(cid) == 1


def test_startup_resolver_does_not_abandon_an_entry_the_position_shows(
    executor: OrderExecutor, fake: FakeExchange, clock: ManualClock
) -> None:
    fake.fault("create_order", OutcomeUnknownError("reset"), when="after")
    fake.fault("fetch_order", TransientExchangeError("502"), times=ORDERS_POLICY.query_attempts)
    first = executor.submit(entry())
    assert first.state is IntentState.UNKNOWN
    fake.hidden[first.client_order_id] = 2
    clock.advance(SETTLE)
    resolved = executor.drive(first, allow_resend=False)
    assert resolved.state is IntentState.FILLED
    assert fake.accepted(first.client_order_id) == 1


def test_entry_really_absent_is_resent_when_the_position_agrees(
    executor: OrderExecutor, fake: FakeExchange, clock: ManualClock
) -> None:
    fake.fault("create_order", OutcomeUnknownError("reset"), when="before")
    done = executor.submit(entry())
    assert done.state is IntentState.FILLED
    assert creates(fake) == [done.client_order_id] * 2
    assert fake.accepted(done.client_order_id) == 1
    assert clock.now_ms() - T0 < 2 * SETTLE  # no doubt, no extra wait


def test_unreadable_position_doubts_the_absence(
    executor: OrderExecutor, fake: FakeExchange
) -> None:
    fake.fault("create_order", OutcomeUnknownError("reset"), when="before")
    fake.fault("fetch_positions", TransientExchangeError("502"), times=100)
    done = executor.submit(entry())
    assert done.state is IntentState.UNKNOWN
    assert creates(fake) == [done.client_order_id]  # not re-sent on an unconfirmed absence


def test_abandoned_doubted_entry_leaves_the_bot_reduce_only_with_the_position_reported(
    bot: Bot, executor: OrderExecutor, fake: FakeExchange, clock: ManualClock
) -> None:
    journal = bot.journal
    fake.fault("create_order", OutcomeUnknownError("-1007 timeout"), when="after")
    cid = _cid(executor)
    fake.hidden[cid] = 10_000
    pm = bot.pm
    assert executor.submit(entry()).state is IntentState.UNKNOWN
    clock.advance(RESOLVE_LIMIT_MS)
    result = pm.sync(bot.snapshot())
    [resolved] = result.resolved
    assert resolved.state is IntentState.ABANDONED
    assert not result.reconciliation.consistent
    assert journal.controls.mode().mode is TradingMode.REDUCE_ONLY
    first, *after = creates(fake)
    assert first == cid  # no entry was sent on top of it
    # the unexplained position is not left bare: the sync gives it an emergency stop
    purposes = [journal.orders.get_intent(c).purpose for c in after]  # type: ignore[union-attr]
    assert purposes == [Purpose.STOP]
