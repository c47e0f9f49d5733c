"""The engine's trailing stop move against an in-memory exchange: the new stop goes before
the old one is canceled, and a move the exchange refuses because the market is already
past it (-2021) closes the position at market at once."""

from __future__ import annotations

import dataclasses
import logging
from decimal import Decimal
from pathlib import Path

import pytest
from orders_fakes import POLICY as ORDERS_POLICY
from orders_fakes import SYMBOL, T0, Bot, FakeExchange, entry_spec

from trendbotd.config import Config
from trendbotd.core.clock import ManualClock
from trendbotd.core.domain import (
    AccountMode,
    AccountSnapshot,
    Balance,
    ClockOffset,
    OrderType,
    Position,
)
from trendbotd.core.records import IntentState, Purpose
from trendbotd.core.strategy.signals import Action, Decision, Direction
from trendbotd.journal.store import Journal
from trendbotd.trading.engine import Engine
from trendbotd.trading.positions import PositionManager

D = Decimal
# a smaller query budget than the other order tests: nothing here needs more
POLICY = dataclasses.replace(ORDERS_POLICY, query_attempts=2, fill_polls=2)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Engine, PositionManager, FakeExchange, Journal]:
    bot = Bot(tmp_path / "bot.db", FakeExchange(), ManualClock(T0), policy=POLICY)
    fake, journal, pm = bot.fake, bot.journal, bot.pm
    snapshot = AccountSnapshot(
        taken_at_ms=T0,
        clock=ClockOffset(0, 1, 0, 5),
        mode=AccountMode.ONE_WAY,
        balance=Balance("USDT", D(10000), D(10000)),
        positions=(),
        open_orders=(),
        markets=fake.load_markets([SYMBOL]),
    )
    engine = Engine(
        config=Config(), exchange=fake, journal=journal, positions=pm, snapshot=snapshot
    )
    opened = pm.open_position(entry_spec())
    assert opened.protected
    yield engine, pm, fake, journal  # type: ignore[misc]
    journal.close()


def move(engine: Engine, stop: float) -> None:
    engine._move_stop(
        SYMBOL,
        Decision(Action.MOVE_STOP, Direction.LONG, stop, "trail"),
        position=Position(SYMBOL, D("0.010"), D(50000)),
        bar_time=T0,
    )


def test_a_move_places_the_new_stop_before_canceling_the_old(
    setup: tuple[Engine, PositionManager, FakeExchange, Journal],
) -> None:
    engine, _, fake, _ = setup
    move(engine, 49500.0)
    (stop,) = fake.open_stops()
    assert stop.stop_price == D("49500.0")
    creates = [c for c in fake.calls if c[0] == "create_order"]
    cancels = [n for n, c in enumerate(fake.calls) if c[0] == "cancel"]
    assert cancels and fake.calls.index(creates[-1]) < cancels[0]


def test_a_move_past_the_market_closes_the_position_at_market(
    setup: tuple[Engine, PositionManager, FakeExchange, Journal],
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
    setup: tuple[Engine, PositionManager, FakeExchange, Journal],
) -> None:
    engine, pm, _, _ = setup
    # a BUY stop left over from a short, newer than the long's SELL stop at 49000
    pm.protect(SYMBOL, position=D("-0.010"), stop_price=D(51000), candle_time_ms=T0, parent=None)
    assert engine._live_stop_price(SYMBOL) == D(49000)
