from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from trendbotd.core.client_ids import make_client_id
from trendbotd.core.domain import (
    AccountMode,
    AccountSnapshot,
    Balance,
    ClockOffset,
    Order,
    OrderStatus,
    OrderType,
    Position,
    Side,
)
from trendbotd.core.reconcile import (
    position_views,
    reconcile,
    resolution_queries,
    stop_coverage,
    update_from_order,
)
from trendbotd.core.records import Intent, IntentState, Purpose

SYM = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"
D = Decimal
INSTANCE = "bot"
STOP_ID = make_client_id(
    instance=INSTANCE, symbol=SYM, candle_time_ms=0, seq=0, purpose=Purpose.STOP
)
ENTRY_ID = make_client_id(
    instance=INSTANCE, symbol=SYM, candle_time_ms=0, seq=0, purpose=Purpose.ENTRY
)


def snap(positions: list[Position], orders: list[Order]) -> AccountSnapshot:
    return AccountSnapshot(
        taken_at_ms=99,
        clock=ClockOffset(0, 1, 0, 5),
        mode=AccountMode.ONE_WAY,
        balance=Balance("USDT", D(10000), D(9000)),
        positions=tuple(positions),
        open_orders=tuple(orders),
    )


def stop_order(
    cid: str = STOP_ID, amount: str = "0.1", side: Side = Side.SELL, symbol: str = SYM
) -> Order:
    return Order(
        symbol=symbol,
        side=side,
        type=OrderType.STOP_MARKET,
        amount=D(amount),
        filled=D(0),
        status=OrderStatus.OPEN,
        client_order_id=cid,
        exchange_order_id="9",
        stop_price=D(48000),
        reduce_only=True,
        conditional=True,
    )


def intent(cid: str, purpose: Purpose, state: IntentState, symbol: str = SYM) -> Intent:
    return Intent(
        client_order_id=cid,
        symbol=symbol,
        side=Side.SELL if purpose is Purpose.STOP else Side.BUY,
        type=OrderType.STOP_MARKET if purpose is Purpose.STOP else OrderType.MARKET,
        amount=D("0.1"),
        purpose=purpose,
        candle_time_ms=0,
        seq=0,
        state=state,
        created_ms=0,
        updated_ms=0,
    )


STOP_INTENT = intent(STOP_ID, Purpose.STOP, IntentState.ACKED)
LONG = Position(SYM, D("0.1"), D(50000))


def run(
    positions: list[Position],
    orders: list[Order],
    expected: dict[str, Decimal],
    known: dict[str, Intent] | None = None,
    unresolved: list[Intent] | None = None,
) -> object:
    return reconcile(
        snapshot=snap(positions, orders),
        expected=expected,
        known=known if known is not None else {STOP_ID: STOP_INTENT},
        unresolved=unresolved or [],
        stop_prices={SYM: D(48000)},
        symbols=[SYM],
        instance=INSTANCE,
    )


def test_consistent_and_protected() -> None:
    rec = run([LONG], [stop_order()], {SYM: D("0.1")})
    assert rec.consistent  # type: ignore[attr-defined]
    assert rec.reduce_only_reason() is None  # type: ignore[attr-defined]
    assert rec.missing_stops == ()  # type: ignore[attr-defined]
    assert rec.adoptions == ()  # type: ignore[attr-defined]


def test_stop_triggered_while_down_is_adopted_quietly() -> None:
    rec = run([], [], {SYM: D("0.1")})
    assert rec.consistent  # type: ignore[attr-defined]
    (adoption,) = rec.adoptions  # type: ignore[attr-defined]
    assert (adoption.symbol, adoption.expected, adoption.actual) == (SYM, D("0.1"), D(0))
    assert "stop triggered" in adoption.reason


def test_flat_while_our_stop_is_still_open_is_a_mismatch() -> None:
    rec = run([], [stop_order()], {SYM: D("0.1")})
    assert "still open" in rec.reduce_only_reason()  # type: ignore[attr-defined]
    # a stop that fired between the reads of one snapshot looks the same: read again first
    assert rec.worth_reading_again  # type: ignore[attr-defined]
    assert [o.client_order_id for o in rec.orphan_stops] == [STOP_ID]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("positions", "expected", "words"),
    [
        ([LONG], {}, "opened outside the bot"),
        ([Position(SYM, D("0.3"), D(50000))], {SYM: D("0.1")}, "size mismatch"),
        ([Position(SYM, D("-0.1"), D(50000))], {SYM: D("0.1")}, "size mismatch"),
    ],
)
def test_position_mismatches(
    positions: list[Position], expected: dict[str, Decimal], words: str
) -> None:
    rec = run(positions, [stop_order(amount="0.3")], expected)
    reason = rec.reduce_only_reason()  # type: ignore[attr-defined]
    assert reason is not None
    assert words in reason
    assert reason.startswith(SYM)
    assert not rec.worth_reading_again  # type: ignore[attr-defined]


def test_unknown_open_orders_are_mismatches() -> None:
    manual = stop_order(cid="web_abc123")
    ours_lost = stop_order(
        cid=make_client_id(
            instance=INSTANCE, symbol=SYM, candle_time_ms=5000, seq=0, purpose=Purpose.STOP
        )
    )
    rec = run([LONG], [stop_order(), manual, ours_lost], {SYM: D("0.1")})
    reason = rec.reduce_only_reason()  # type: ignore[attr-defined]
    assert "unknown open order web_abc123" in reason
    assert "missing from the journal" in reason


def test_open_order_the_journal_calls_final_is_a_mismatch() -> None:
    canceled = intent(STOP_ID, Purpose.STOP, IntentState.CANCELED)
    rec = run([LONG], [stop_order()], {SYM: D("0.1")}, known={STOP_ID: canceled})
    assert "as CANCELED but the exchange shows it open" in rec.reduce_only_reason()  # type: ignore[attr-defined]


def test_unresolved_intent_blocks_adoption() -> None:
    unknown = intent(ENTRY_ID, Purpose.ENTRY, IntentState.UNKNOWN)
    rec = run([LONG], [stop_order()], {}, unresolved=[unknown])
    reason = rec.reduce_only_reason()  # type: ignore[attr-defined]
    assert f"cannot account for {ENTRY_ID}" in reason
    assert "opened outside" not in reason  # one explanation per symbol
    acked = intent(ENTRY_ID, Purpose.ENTRY, IntentState.ACKED)
    assert run([LONG], [stop_order()], {SYM: D("0.1")}, unresolved=[acked]).consistent  # type: ignore[attr-defined]


def test_missing_and_partial_stops() -> None:
    rec = run([LONG], [], {SYM: D("0.1")})
    (gap,) = rec.missing_stops  # type: ignore[attr-defined]
    assert (gap.position, gap.uncovered, gap.stop_price, gap.owned) == (
        D("0.1"),
        D("0.1"),
        D(48000),
        True,
    )
    assert gap.side is Side.SELL
    partial = run([Position(SYM, D("0.3"), D(1))], [stop_order()], {SYM: D("0.3")})
    (gap,) = partial.missing_stops  # type: ignore[attr-defined]
    assert gap.uncovered == D("0.2")
    # a stop on the wrong side protects nothing
    wrong = run([LONG], [stop_order(side=Side.BUY)], {SYM: D("0.1")})
    assert len(wrong.missing_stops) == 1  # type: ignore[attr-defined]
    # an unowned position is reported, not owned
    hand = run([LONG], [], {})
    assert hand.missing_stops[0].owned is False  # type: ignore[attr-defined]


def test_short_position_needs_a_buy_stop_and_close_position_stops_cover() -> None:
    short = Position(SYM, D("-0.1"), D(50000))
    rec = run([short], [stop_order(side=Side.BUY, amount="0")], {SYM: D("-0.1")})
    assert rec.missing_stops == ()  # type: ignore[attr-defined]
    assert stop_coverage([stop_order(side=Side.BUY, amount="0")], SYM, D("-0.1")) == D("0.1")
    assert stop_coverage([], SYM, D(0)) == D(0)


def test_resolution_queries_and_order_adoption() -> None:
    intents = [
        intent("a", Purpose.ENTRY, IntentState.SENT),
        intent("b", Purpose.STOP, IntentState.ACKED),
        intent("c", Purpose.ENTRY, IntentState.FILLED),
    ]
    queries = resolution_queries(intents)
    assert [(q.client_order_id, q.conditional) for q in queries] == [("a", False), ("b", True)]
    filled = Order(
        SYM,
        Side.BUY,
        OrderType.MARKET,
        D(1),
        D(1),
        OrderStatus.FILLED,
        "a",
        "77",
        average_price=D(5),
    )
    update = update_from_order(filled)
    assert (update.state, update.filled, update.exchange_order_id) == (
        IntentState.FILLED,
        D(1),
        "77",
    )
    expired = Order(SYM, Side.BUY, OrderType.LIMIT, D(1), D("0.4"), OrderStatus.EXPIRED, "a", "7")
    assert update_from_order(expired).state is IntentState.CANCELED
    live = Order(SYM, Side.BUY, OrderType.LIMIT, D(1), D(0), OrderStatus.OPEN, "a", "7")
    assert update_from_order(live).state is IntentState.ACKED
    triggered = dataclasses.replace(stop_order(), status=OrderStatus.FILLED)
    assert update_from_order(triggered).filled == D("0.1")  # the algo API omits the quantity


def test_position_views_carry_the_protecting_stop() -> None:
    views = position_views(snap([LONG, Position(ETH, D(0), D(0))], [stop_order()]))
    assert [(v.symbol, v.stop_price, v.stop_client_order_id, v.seen_at_ms) for v in views] == [
        (SYM, D(48000), STOP_ID, 99)
    ]
    bare = position_views(snap([LONG], []))
    assert bare[0].stop_price is None
