"""PositionManager against an in-memory exchange: entry + stop, closing through faults,
the startup resolver after a crash at every kill point, sync decisions, shutdown."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import pytest
from orders_fakes import CANDLE, ORDERS_POLICY, SYMBOL, T0, Bot, FakeExchange, entry_spec

from trendbotd.core.client_ids import parse_client_id
from trendbotd.core.clock import ManualClock
from trendbotd.core.domain import (
    Order,
    OrderStatus,
    OrderType,
    Position,
    Side,
)
from trendbotd.core.records import IntentSpec, IntentState, Purpose, TradingMode
from trendbotd.errors import InvalidOrderError, OutcomeUnknownError, TransientExchangeError
from trendbotd.trading.crashpoints import STEPS
from trendbotd.trading.executor import EntryBlockedError
from trendbotd.trading.positions import CloseFailedError

D = Decimal


class SimulatedCrash(BaseException):
    """Stands in for SIGKILL inside one process: nothing after the step runs."""


class CrashAt:
    def __init__(self, step: str, *, nth: int = 1) -> None:
        assert step in STEPS
        self.step = step
        self.left = nth

    def hit(self, step: str) -> None:
        if step == self.step:
            self.left -= 1
            if self.left == 0:
                raise SimulatedCrash(step)


class TimedCrash(CrashAt):
    """A crash point on a clock that moves between steps, as a real one does."""

    def __init__(self, clock: ManualClock, step: str, *, nth: int = 1) -> None:
        super().__init__(step, nth=nth)
        self.clock = clock

    def hit(self, step: str) -> None:
        self.clock.advance(1)
        super().hit(step)


def entry(side: Side = Side.BUY, stop: str = "49000") -> IntentSpec:
    return entry_spec(side=side, protective_stop=D(stop))


def assert_no_duplicates(fake: FakeExchange) -> None:
    ids = [o.client_order_id for o in fake.orders]
    assert len(ids) == len(set(ids)), ids


def assert_protected(fake: FakeExchange) -> None:
    held = fake.positions.get(SYMBOL, D(0))
    if held != 0:
        covered = sum((o.amount for o in fake.open_stops()), D(0))
        assert covered >= abs(held), f"position {held} has stops for {covered}"


# ----- entry and stop -----


def test_entry_fill_gets_a_reduce_only_stop(bot: Bot, fake: FakeExchange) -> None:
    result = bot.pm.open_position(entry())
    assert result.protected
    assert result.stop is not None
    (stop,) = fake.open_stops()
    assert (stop.side, stop.amount, stop.stop_price, stop.reduce_only) == (
        Side.SELL,
        D("0.010"),
        D(49000),
        True,
    )
    assert stop.client_order_id == result.stop.client_order_id
    assert result.stop.parent_client_order_id == result.entry.client_order_id


class MarketPassesTheStop:
    """Between the stop and the entry, the market falls through the stop while the account
    is still flat: the reduce-only stop expires on the exchange (nothing to reduce)."""

    def __init__(self, fake: FakeExchange) -> None:
        self.fake = fake

    def hit(self, step: str) -> None:
        if step == "between_stop_and_entry":
            self.fake.price = D(48500)
            self.fake.expire_stops()


def test_a_stop_that_expired_before_its_entry_filled_does_not_count(
    tmp_path: Path, fake: FakeExchange, clock: ManualClock
) -> None:
    bot = Bot(tmp_path / "bot.db", fake, clock, MarketPassesTheStop(fake))  # type: ignore[arg-type]
    try:
        result = bot.pm.open_position(entry())  # long, stop 49000; fills at 48500
        held = fake.positions.get(SYMBOL, D(0))
        # never a position without a live stop: the expired stop is not counted; a new one
        # at 49000 would trigger at once (-2021), so the position is closed at market
        assert held == 0 or sum(s.amount for s in fake.open_stops()) >= abs(held)
        assert held == 0 and result.close is not None and result.close.flat
        assert bot.journal.account.expected_positions() == {}
    finally:
        bot.journal.close()


def test_short_entry_gets_a_buy_stop(bot: Bot, fake: FakeExchange) -> None:
    result = bot.pm.open_position(entry(Side.SELL, stop="51000"))
    assert result.protected
    assert fake.open_stops()[0].side is Side.BUY


def test_the_stop_goes_out_before_the_entry(bot: Bot, fake: FakeExchange) -> None:
    result = bot.pm.open_position(entry())
    sent = [o.client_order_id for o in fake.orders]
    assert result.stop is not None
    assert sent == [result.stop.client_order_id, result.entry.client_order_id]
    # journalled in the same order: the stop's intent exists before the entry's
    journalled = [i.client_order_id for i in bot.journal.orders.intents_since(0)]
    assert journalled == sent
    (stop,) = fake.open_stops()
    assert stop.amount == D("0.010")  # the entry's amount, not closePosition
    assert stop.reduce_only


def test_stop_refused_before_the_entry_abandons_the_entry(bot: Bot, fake: FakeExchange) -> None:
    result = bot.pm.open_position(entry(stop="50500"))  # above the price: would trigger now
    assert not result.protected
    assert result.stop is not None
    assert result.stop.refused_would_trigger
    assert result.entry.state is IntentState.ABANDONED
    assert fake.accepted_plain() == []  # the entry never left
    assert fake.positions.get(SYMBOL, D(0)) == 0
    assert bot.journal.account.expected_positions() == {}
    # the same decision again finds the abandoned entry and sends nothing
    calls = len(fake.calls)
    again = bot.pm.open_position(entry(stop="50500"))
    assert again.entry.state is IntentState.ABANDONED
    assert [c for c in fake.calls[calls:] if c[0] == "create_order"] == []


def test_stop_refused_for_an_open_position_closes_it_at_market(
    bot: Bot, fake: FakeExchange, caplog: pytest.LogCaptureFixture
) -> None:
    bot.pm.open_position(entry())
    # a trailing move to a price the market has already passed: Binance says -2021
    with caplog.at_level(logging.ERROR):
        stop, close = bot.pm.protect_or_close(
            SYMBOL, position=D("0.010"), stop_price=D(50500), candle_time_ms=CANDLE, parent=None
        )
    assert stop.refused_would_trigger
    assert close is not None
    assert close.flat
    assert fake.positions[SYMBOL] == 0
    assert close.orders[0].reduce_only
    assert f"stop.would_trigger symbol={SYMBOL} stop_price=50500 mark=50000" in caplog.text


def test_partial_fill_keeps_the_entry_sized_stop(bot: Bot, fake: FakeExchange) -> None:
    fake.fill_ratio = D("0.4")
    result = bot.pm.open_position(entry())
    assert result.entry.filled == D("0.004")
    assert result.protected
    (stop,) = fake.open_stops()
    assert stop.amount == D("0.010")  # reduce-only: larger than the position is safe
    assert_no_duplicates(fake)


def test_wrong_side_stop_in_the_journal_does_not_count(bot: Bot, fake: FakeExchange) -> None:
    # a short's BUY stop is still ACKED in the journal (the short was closed by hand and
    # the stop not yet seen gone); a long filled now must get its own SELL stop
    bot.pm.open_position(entry(Side.SELL, stop="51000"))
    fake.positions[SYMBOL] = D(0)
    bot.journal.account.set_expected_position(SYMBOL, D(0), now_ms=T0)
    long = IntentSpec(
        SYMBOL, Side.BUY, OrderType.MARKET, D("0.010"), Purpose.ENTRY, CANDLE + 3_600_000,
        protective_stop=D(49000),
    )  # fmt: skip
    filled = bot.executor.submit(long)  # an entry found filled, e.g. resolved by its id
    result = bot.pm.flow.protect_entry(filled, D(49000))
    assert result.protected
    assert result.stop is not None
    assert result.stop.side is Side.SELL
    assert [o.side for o in fake.open_stops()] == [Side.BUY, Side.SELL]
    assert bot.pm.flow.live_stops(SYMBOL) == [result.stop]


def test_stop_placement_through_a_dropped_reply(bot: Bot, fake: FakeExchange) -> None:
    fake.fault(
        "create_order",
        OutcomeUnknownError("reset"),
        when="after",
        match=lambda r: r.type is OrderType.STOP_MARKET,
    )
    result = bot.pm.open_position(entry())
    assert result.protected
    assert len(fake.open_stops()) == 1
    assert_no_duplicates(fake)


def test_unfilled_entry_cancels_its_stop(bot: Bot, fake: FakeExchange) -> None:
    fake.fault(
        "create_order",
        InvalidOrderError("notional too small (-4164)", code=-4164),
        match=lambda r: r.type is OrderType.MARKET,
    )
    result = bot.pm.open_position(entry())
    assert result.entry.state is IntentState.REJECTED
    assert result.stop is None
    assert fake.open_stops() == []
    assert fake.accepted_plain() == []
    assert bot.journal.orders.non_final_intents() == []


def test_same_decision_after_a_restart_sends_nothing(
    tmp_path: Path, fake: FakeExchange, clock: ManualClock
) -> None:
    first = Bot(tmp_path / "bot.db", fake, clock)
    opened = first.pm.open_position(entry())
    first.journal.close()
    restarted = Bot(tmp_path / "bot.db", fake, clock)
    calls = len(fake.calls)
    again = restarted.pm.open_position(entry())
    assert again.entry.client_order_id == opened.entry.client_order_id
    assert again.stop is not None
    assert again.stop.client_order_id == opened.stop.client_order_id  # type: ignore[union-attr]
    assert [c for c in fake.calls[calls:] if c[0] in ("create_order", "cancel")] == []
    assert len(fake.open_stops()) == 1
    restarted.journal.close()


def test_resolved_entry_already_protected_by_sync_gets_no_second_stop(
    bot: Bot, fake: FakeExchange
) -> None:
    fake.fault(
        "create_order",
        OutcomeUnknownError("reset"),
        when="after",
        match=lambda r: r.type is OrderType.MARKET,
    )
    fake.fault("fetch_order", TransientExchangeError("502"), times=ORDERS_POLICY.query_attempts)
    first = bot.pm.open_position(entry())
    assert first.entry.state is IntentState.UNKNOWN
    assert len(fake.open_stops()) == 1  # the stop went first and stays: the entry may exist
    bot.pm.sync(bot.snapshot())  # resolves the fill; the stop already covers it
    assert len(fake.open_stops()) == 1
    again = bot.pm.open_position(entry())
    assert again.protected
    assert len(fake.open_stops()) == 1
    assert_no_duplicates(fake)


def test_the_stop_of_an_entry_in_doubt_stays_until_the_entry_is_resolved(
    bot: Bot, fake: FakeExchange
) -> None:
    fake.fault(
        "create_order",
        OutcomeUnknownError("reset"),
        match=lambda r: r.type is OrderType.MARKET,
    )  # not executed, but the bot cannot know
    fake.fault("fetch_order", TransientExchangeError("502"), times=2 * ORDERS_POLICY.query_attempts)
    first = bot.pm.open_position(entry())
    assert first.entry.state is IntentState.UNKNOWN
    bot.pm.sync(bot.snapshot())  # still no answer: the flat symbol's stop is kept
    assert len(fake.open_stops()) == 1
    bot.clock.advance(10_000)
    bot.pm.sync(bot.snapshot())  # confirmed absent: now the stop goes
    assert bot.journal.orders.get_intent(first.entry.client_order_id).state is IntentState.ABANDONED  # type: ignore[union-attr]
    assert fake.open_stops() == []
    assert bot.journal.orders.non_final_intents() == []


def test_an_entry_refused_by_the_mode_places_no_stop(bot: Bot, fake: FakeExchange) -> None:
    bot.journal.controls.set_mode(TradingMode.REDUCE_ONLY, reason="test", now_ms=T0)
    with pytest.raises(EntryBlockedError):
        bot.pm.open_position(entry())
    assert fake.orders == []


def test_open_position_requires_a_protective_stop(bot: Bot) -> None:
    spec = IntentSpec(SYMBOL, Side.BUY, OrderType.MARKET, D(1), Purpose.ENTRY, CANDLE)
    with pytest.raises(ValueError, match="protective_stop"):
        bot.pm.open_position(spec)


# ----- closing -----


def test_close_through_drops_uses_one_order(bot: Bot, fake: FakeExchange) -> None:
    bot.pm.open_position(entry())
    fake.fault(
        "create_order", OutcomeUnknownError("reset"), when="after", match=lambda r: r.reduce_only
    )
    result = bot.pm.close_position(
        SYMBOL, purpose=Purpose.EXIT, candle_time_ms=CANDLE, reason="signal"
    )
    assert result.flat
    assert fake.positions[SYMBOL] == 0
    assert fake.open_stops() == []  # the stop is canceled once flat
    closes = [o for o in fake.accepted_plain() if o.reduce_only]
    assert len(closes) == 1
    assert_no_duplicates(fake)


def test_close_request_lost_before_is_resent_with_same_id(bot: Bot, fake: FakeExchange) -> None:
    bot.pm.open_position(entry())
    fake.fault(
        "create_order", OutcomeUnknownError("reset"), when="before", match=lambda r: r.reduce_only
    )
    result = bot.pm.close_position(
        SYMBOL, purpose=Purpose.EXIT, candle_time_ms=CANDLE, reason="signal"
    )
    assert result.flat
    (close,) = result.orders
    assert close.attempts == 2
    assert fake.accepted(close.client_order_id) == 1


def test_close_rejected_reduce_only_because_stop_already_closed(
    bot: Bot, fake: FakeExchange
) -> None:
    bot.pm.open_position(entry())
    fake.trigger_stops()  # the stop fired just before our exit
    result = bot.pm.close_position(
        SYMBOL, purpose=Purpose.EXIT, candle_time_ms=CANDLE, reason="signal"
    )
    assert result.flat
    assert result.orders == ()  # flat already: nothing sent
    assert bot.journal.account.expected_positions() == {}


def test_close_never_stacks_on_an_unknown_close(bot: Bot, fake: FakeExchange) -> None:
    bot.pm.open_position(entry())
    fake.fault(
        "create_order", OutcomeUnknownError("reset"), when="before", match=lambda r: r.reduce_only
    )
    fake.fault("fetch_order", TransientExchangeError("502"), times=10_000)
    with pytest.raises(CloseFailedError):
        bot.pm.close_position(SYMBOL, purpose=Purpose.EXIT, candle_time_ms=CANDLE, reason="x")
    exits = {
        c
        for m, c in fake.calls
        if m == "create_order" and (p := parse_client_id(c)) and p.purpose is Purpose.EXIT
    }
    assert len(exits) == 1  # one close intent, never a second on top of an unknown one
    assert_protected(fake)  # the stop was left in place


# ----- the startup resolver after a crash at each kill point -----


@pytest.mark.parametrize("step", STEPS)
def test_crash_at_every_step_recovers_without_duplicates_or_gaps(
    tmp_path: Path, fake: FakeExchange, clock: ManualClock, step: str
) -> None:
    path = tmp_path / "bot.db"
    dying = Bot(path, fake, clock, crash=CrashAt(step))
    with pytest.raises(SimulatedCrash):
        dying.pm.open_position(entry())
        dying.pm.close_position(SYMBOL, purpose=Purpose.EXIT, candle_time_ms=CANDLE, reason="x")
    dying.journal.close()
    clock.advance(30_000)

    restarted = Bot(path, fake, clock)
    result = restarted.pm.sync(restarted.snapshot())
    assert result.reconciliation.consistent, result.reconciliation.reduce_only_reason()
    assert restarted.journal.controls.mode().mode is TradingMode.NORMAL
    assert restarted.journal.orders.non_final_intents() == [
        i for i in restarted.journal.orders.non_final_intents() if i.state is IntentState.ACKED
    ]
    assert_no_duplicates(fake)
    assert_protected(fake)
    assert restarted.journal.account.expected_positions() == {
        s: a for s, a in fake.positions.items() if a != 0
    }
    # the same decision made again after the restart never becomes a second order
    again = restarted.executor.submit(entry())
    assert again.state.is_final
    assert_no_duplicates(fake)
    restarted.journal.close()


def test_fill_while_down_is_adopted_and_protected(
    tmp_path: Path, fake: FakeExchange, clock: ManualClock
) -> None:
    path = tmp_path / "bot.db"
    # the 2nd reply lost is the entry's (the stop's came first)
    dying = Bot(path, fake, clock, crash=CrashAt("after_reply_before_journal", nth=2))
    with pytest.raises(SimulatedCrash):
        dying.pm.open_position(entry())
    stop_intent, entry_intent = dying.journal.orders.intents_since(0)
    assert entry_intent.state is IntentState.SENT
    assert stop_intent.state is IntentState.ACKED
    dying.journal.close()
    restarted = Bot(path, fake, clock)
    result = restarted.pm.sync(restarted.snapshot())
    cid = entry_intent.client_order_id
    assert restarted.journal.orders.get_intent(cid).state is IntentState.FILLED  # type: ignore[union-attr]
    assert result.stops_placed == ()  # the stop placed before the entry covers the fill
    assert_protected(fake)
    synced = restarted.journal.account.last_sync()
    assert synced is not None
    assert synced[1][0].stop_client_order_id == stop_intent.client_order_id


def test_stop_triggered_while_down_is_booked_from_the_stop(bot: Bot, fake: FakeExchange) -> None:
    opened = bot.pm.open_position(entry())
    assert opened.stop is not None
    fake.trigger_stops()
    result = bot.pm.sync(bot.snapshot())
    assert result.reconciliation.consistent
    stop = bot.journal.orders.get_intent(opened.stop.client_order_id)
    assert stop is not None
    assert stop.state is IntentState.FILLED
    assert bot.journal.account.expected_positions() == {}
    assert bot.journal.controls.mode().mode is TradingMode.NORMAL
    assert bot.journal.orders.non_final_intents() == []


def test_stop_firing_between_the_snapshot_reads_is_read_again_not_a_mismatch(
    bot: Bot, fake: FakeExchange
) -> None:
    opened = bot.pm.open_position(entry())
    assert opened.stop is not None
    listed = bot.snapshot().open_orders  # orders read first: the stop still rests
    fake.trigger_stops()  # ... it fires before the positions are read
    torn = dataclasses.replace(bot.snapshot(), open_orders=listed)
    result = bot.pm.sync(torn)
    assert result.reconciliation.consistent
    assert bot.journal.account.expected_positions() == {}
    assert bot.journal.controls.mode().mode is TradingMode.NORMAL
    assert [c for c in fake.calls if c[0] == "cancel"] == []  # the fired stop is not canceled
    # its intent is resolved (FILLED) in the same sync: its fill is counted once, not again
    # at the next sync on top of the adopted flat
    stop = bot.journal.orders.get_intent(opened.stop.client_order_id)
    assert stop is not None and stop.state is IntentState.FILLED
    assert bot.pm.sync(bot.snapshot()).reconciliation.consistent
    assert bot.journal.account.expected_positions() == {}


def test_position_gone_with_its_stop_is_adopted_quietly(bot: Bot, fake: FakeExchange) -> None:
    opened = bot.pm.open_position(entry())
    assert opened.stop is not None
    # by hand while the bot was down: stop canceled, position closed
    fake.cancel_order_by_client_id(SYMBOL, opened.stop.client_order_id, conditional=True)
    fake.positions[SYMBOL] = D(0)
    result = bot.pm.sync(bot.snapshot())
    assert result.reconciliation.consistent
    (adoption,) = result.reconciliation.adoptions
    assert (adoption.expected, adoption.actual) == (D("0.010"), D(0))
    assert bot.journal.account.expected_positions() == {}
    assert bot.journal.controls.mode().mode is TradingMode.NORMAL


def test_position_opened_by_hand_goes_reduce_only_with_an_emergency_stop(
    bot: Bot, fake: FakeExchange
) -> None:
    fake.positions[SYMBOL] = D("0.5")
    result = bot.pm.sync(bot.snapshot())
    mode = bot.journal.controls.mode()
    assert mode.mode is TradingMode.REDUCE_ONLY
    assert "opened outside the bot" in mode.reason
    assert result.unprotected == ()
    # no synthetic corrective order, only a stop 5% below the mark (50000)
    assert fake.accepted_plain() == []
    (stop,) = fake.open_stops()
    assert (stop.side, stop.amount, stop.stop_price, stop.reduce_only) == (
        Side.SELL,
        D("0.5"),
        D(47500),
        True,
    )


def test_owned_position_without_a_known_stop_price_gets_an_emergency_stop(
    tmp_path: Path, fake: FakeExchange, clock: ManualClock
) -> None:
    path = tmp_path / "bot.db"
    bot = Bot(path, fake, clock)
    bot.pm.emergency_stop_distance = D("0.1")
    fake.positions[SYMBOL] = D("-0.2")
    bot.journal.account.set_expected_position(
        SYMBOL, D("-0.2"), now_ms=T0
    )  # ours, stop price unknown
    result = bot.pm.sync(bot.snapshot())
    assert result.unprotected == ()
    assert bot.journal.controls.mode().mode is TradingMode.NORMAL
    (stop,) = fake.open_stops()
    assert (stop.side, stop.amount, stop.stop_price) == (Side.BUY, D("0.2"), D(55000))
    bot.journal.close()


def test_unknown_open_order_goes_reduce_only(bot: Bot, fake: FakeExchange) -> None:
    fake.orders.append(
        Order(SYMBOL, Side.BUY, OrderType.LIMIT, D(1), D(0), OrderStatus.OPEN, "web_123", "1")
    )
    bot.pm.sync(bot.snapshot())
    assert "unknown open order web_123" in bot.journal.controls.mode().reason


def test_missing_stop_of_an_owned_position_is_replaced(bot: Bot, fake: FakeExchange) -> None:
    result = bot.pm.open_position(entry())
    assert result.stop is not None
    fake.cancel_order_by_client_id(SYMBOL, result.stop.client_order_id, conditional=True)
    synced = bot.pm.sync(bot.snapshot())
    assert len(synced.stops_placed) == 1
    assert synced.stops_placed[0].client_order_id != result.stop.client_order_id
    assert_protected(fake)
    assert bot.journal.controls.mode().mode is TradingMode.NORMAL


def test_missing_stop_whose_price_is_gone_closes_the_position(bot: Bot, fake: FakeExchange) -> None:
    result = bot.pm.open_position(entry())
    assert result.stop is not None
    fake.cancel_order_by_client_id(SYMBOL, result.stop.client_order_id, conditional=True)
    fake.price = D(48000)  # below the stop while it was missing
    synced = bot.pm.sync(bot.snapshot())
    assert synced.closed and synced.closed[0].flat
    assert fake.positions[SYMBOL] == 0


def test_orphan_stop_on_a_flat_symbol_is_canceled(bot: Bot, fake: FakeExchange) -> None:
    bot.pm.open_position(entry())
    # the position went away (closed by hand) and the journal already agrees
    fake.positions[SYMBOL] = D(0)
    bot.journal.account.set_expected_position(SYMBOL, D(0), now_ms=T0)
    bot.pm.sync(bot.snapshot())
    assert fake.open_stops() == []
    assert bot.journal.orders.non_final_intents() == []


# ----- shutdown -----


def test_shutdown_leave_sends_nothing(bot: Bot, fake: FakeExchange) -> None:
    bot.pm.open_position(entry())
    before = list(fake.calls)
    report = bot.pm.shutdown("leave")
    assert (report.canceled, report.closed) == ((), ())
    assert fake.calls == before
    assert_protected(fake)


def test_shutdown_cancel_entries(bot: Bot, fake: FakeExchange) -> None:
    resting = bot.executor.submit(
        IntentSpec(
            SYMBOL,
            Side.BUY,
            OrderType.STOP_MARKET,  # stands in for a resting entry order
            D("0.010"),
            Purpose.ENTRY,
            CANDLE,
            stop_price=D(51000),
        )
    )
    assert resting.state is IntentState.ACKED
    report = bot.pm.shutdown("cancel_entries")
    assert [i.state for i in report.canceled] == [IntentState.CANCELED]
    assert fake.open_stops() == []


def test_shutdown_flatten(bot: Bot, fake: FakeExchange) -> None:
    bot.pm.open_position(entry())
    report = bot.pm.shutdown("flatten")
    assert [c.flat for c in report.closed] == [True]
    assert fake.positions[SYMBOL] == 0
    assert fake.open_stops() == []
    assert bot.journal.orders.non_final_intents() == []


def test_stop_that_fired_after_its_lost_entry_fill_is_booked_after_that_fill(
    tmp_path: Path, fake: FakeExchange, clock: ManualClock
) -> None:
    """The stop goes out before its entry, so it is older in the journal; it can only have
    fired against the position that entry opened. Resolved in journal order, its fill was
    booked first, on a flat expectation (capped: nothing to reduce), and the entry's fill
    then counted on top of a position the stop had already closed."""
    path = tmp_path / "bot.db"
    # the 2nd reply lost is the entry's (the stop's came first), a moment after the stop
    dying = Bot(path, fake, clock, TimedCrash(clock, "after_reply_before_journal", nth=2))
    with pytest.raises(SimulatedCrash):
        dying.pm.open_position(entry())
    stop_intent, entry_intent = dying.journal.orders.intents_since(0)
    assert entry_intent.state is IntentState.SENT
    assert stop_intent.created_ms < entry_intent.created_ms
    dying.journal.close()
    fake.trigger_stops()  # filled entry, then its stop fired while the bot was down
    assert fake.positions[SYMBOL] == 0

    restarted = Bot(path, fake, clock)
    result = restarted.pm.sync(restarted.snapshot())
    assert result.reconciliation.consistent, result.reconciliation.reduce_only_reason()
    assert result.reconciliation.adoptions == ()  # explained by the fills, nothing adopted
    assert restarted.journal.account.expected_positions() == {}
    stop = restarted.journal.orders.get_intent(stop_intent.client_order_id)
    assert stop is not None and stop.state is IntentState.FILLED
    restarted.journal.close()


def test_stop_smaller_than_the_fill_it_cut_leaves_no_size_mismatch(
    tmp_path: Path, fake: FakeExchange, clock: ManualClock
) -> None:
    """The same mechanism with a stop smaller than the position it fired on (here one left
    by an earlier sizing of the same decision): booked before the entry's fill it was lost,
    and the sync found "size mismatch: the journal expects 0.010, the exchange has 0.006"."""
    path = tmp_path / "bot.db"
    first = Bot(path, fake, clock, TimedCrash(clock, "between_stop_and_entry"))
    with pytest.raises(SimulatedCrash):
        first.pm.open_position(dataclasses.replace(entry(), amount=D("0.004")))
    first.journal.close()
    # the decision made again, sized larger: its stop is reused, the entry's reply is lost
    dying = Bot(path, fake, clock, TimedCrash(clock, "after_reply_before_journal"))
    with pytest.raises(SimulatedCrash):
        dying.pm.open_position(entry())
    dying.journal.close()
    fake.trigger_stops()
    assert fake.positions[SYMBOL] == D("0.006")

    restarted = Bot(path, fake, clock)
    result = restarted.pm.sync(restarted.snapshot())
    assert result.reconciliation.consistent, result.reconciliation.reduce_only_reason()
    assert restarted.journal.account.expected_positions() == {SYMBOL: D("0.006")}
    assert restarted.journal.controls.mode().mode is TradingMode.NORMAL
    assert_protected(fake)
    restarted.journal.close()


@dataclasses.dataclass
class SlowPositions(FakeExchange):
    """Each positions read takes half a second of the clock; records when each began."""

    clock: ManualClock = dataclasses.field(default_factory=lambda: ManualClock(T0))
    read_starts: list[int] = dataclasses.field(default_factory=list)

    def fetch_positions(self, symbols: Sequence[str]) -> list[Position]:
        self.read_starts.append(self.clock.now_ms())
        self.clock.advance(500)
        return super().fetch_positions(symbols)


def test_sync_record_is_stamped_before_its_reads(tmp_path: Path, clock: ManualClock) -> None:
    """A stop that fires while the sync reads again is later than the recorded sync, never
    before it (the kill cycles compare trigger times with this stamp)."""
    fake = SlowPositions(clock=clock, positions={SYMBOL: D("0.010")})
    bot = Bot(tmp_path / "bot.db", fake, clock)
    result = bot.pm.sync(bot.snapshot())
    assert result.stops_placed  # acted: the positions were read again after it
    last = bot.journal.account.last_sync()
    assert last is not None
    assert last[0] <= fake.read_starts[-1]
    bot.journal.close()
