"""The tick's trailing stop move (the planner's MoveStop carried out by the PlanExecutor)
against an in-memory exchange: the new stop goes before the old one is canceled, and a
move the exchange refuses because the market is already past it (-2021) closes the
position at market at once."""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path

import pytest
from orders_fakes import POLICY, SYMBOL, FakeExchange

from trendbotd.alerts.sink import NullAlertSink
from trendbotd.core.clock import ManualClock
from trendbotd.core.domain import OrderType, Position, Side
from trendbotd.core.planner import MoveStop, plan
from trendbotd.core.records import IntentSpec, IntentState, Purpose
from trendbotd.core.strategy.signals import Action, Decision, Direction
from trendbotd.journal.store import Journal, open_journal
from trendbotd.trading.executor import OrderExecutor
from trendbotd.trading.plan_executor import PlanExecutor
from trendbotd.trading.positions import PositionManager
from trendbotd.trading.tick_view import read_symbol

D = Decimal
T0 = 1_700_000_000_000
CANDLE = T0 - 3_600_000


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Mover, PositionManager, FakeExchange, Journal]:
    fake = FakeExchange()
    clock = ManualClock(T0)
    journal = open_journal(tmp_path / "bot.db")
    executor = OrderExecutor(
        exchange=fake, journal=journal, clock=clock, instance="bot", policy=POLICY
    )
    pm = PositionManager(executor=executor, symbols=[SYMBOL], close_rounds=4)
    engine = Mover(
        PlanExecutor(positions=pm, journal=journal, alerts=NullAlertSink()), journal, fake
    )
    opened = pm.open_position(
        IntentSpec(
            SYMBOL, Side.BUY, OrderType.MARKET, D("0.010"), Purpose.ENTRY, CANDLE,
            protective_stop=D(49000),
        )
    )  # fmt: skip
    assert opened.protected
    yield engine, pm, fake, journal  # type: ignore[misc]
    journal.close()


class Mover:
    """What a tick does with a trail decision: plan it on the symbol's view, carry it out."""

    def __init__(self, executor: PlanExecutor, journal: Journal, fake: FakeExchange) -> None:
        self.executor, self.journal = executor, journal
        self.market = fake.load_markets([SYMBOL])[SYMBOL]

    def live_stop_price(self, symbol: str) -> Decimal | None:
        return read_symbol(self.journal, symbol).stop_price

    def move(self, decision: Decision, *, position: Position, bar_time: int) -> None:
        held = read_symbol(self.journal, SYMBOL)
        for action in plan(decision, held.view(position, self.market)):
            assert isinstance(action, MoveStop)
            self.executor.move_stop(SYMBOL, action, position=position.amount, old=held.stops,
                                    bar_time=bar_time)  # fmt: skip


def move(engine: Mover, stop: float) -> None:
    engine.move(
        Decision(Action.MOVE_STOP, Direction.LONG, stop, "trail"),
        position=Position(SYMBOL, D("0.010"), D(50000)),
        bar_time=T0,
    )


def test_a_move_places_the_new_stop_before_canceling_the_old(
    setup: tuple[Mover, PositionManager, FakeExchange, Journal],
) -> None:
    engine, _, fake, _ = setup
    move(engine, 49500.0)
    (stop,) = fake.open_stops()
    assert stop.stop_price == D("49500.0")
    creates = [c for c in fake.calls if c[0] == "create_order"]
    cancels = [n for n, c in enumerate(fake.calls) if c[0] == "cancel"]
    assert cancels and fake.calls.index(creates[-1]) < cancels[0]


def test_a_move_past_the_market_closes_the_position_at_market(
    setup: tuple[Mover, PositionManager, FakeExchange, Journal],
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine, _, fake, journal = setup
    fake.price = D(49800)  # the market fell below the new stop before it was placed
    with caplog.at_level(logging.ERROR):
        move(engine, 49900.0)
    assert fake.positions[SYMBOL] == 0
    assert fake.open_stops() == []
    assert journal.account.expected_positions() == {}
    closes = [i for i in journal.orders.intents_since(0) if i.purpose is Purpose.FLATTEN]
    assert [(c.state, c.reduce_only, c.type) for c in closes] == [
        (IntentState.FILLED, True, OrderType.MARKET)
    ]
    line = next(r for r in caplog.records if "stop.would_trigger" in r.getMessage())
    assert line.levelno == logging.ERROR
    assert f"symbol={SYMBOL} stop_price=49900.0 mark=49800" in line.getMessage()


def test_the_stop_the_strategy_trails_is_the_one_on_the_closing_side(
    setup: tuple[Mover, PositionManager, FakeExchange, Journal],
) -> None:
    engine, pm, _, _ = setup
    # a BUY stop left over from a short, newer than the long's SELL stop at 49000
    pm.protect(SYMBOL, position=D("-0.010"), stop_price=D(51000), candle_time_ms=T0, parent=None)
    assert engine.live_stop_price(SYMBOL) == D(49000)
