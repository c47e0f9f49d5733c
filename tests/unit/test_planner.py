"""The trade planner as a table: a view in, the actions out. No exchange, no journal."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from trendbotd.config import RiskConfig, StrategyParams
from trendbotd.core.domain import Balance, Candle, Market, Position, Side
from trendbotd.core.guards import GuardContext
from trendbotd.core.planner import (
    Block,
    Close,
    Enter,
    EntryDue,
    EntryView,
    GuardInputs,
    LiveStop,
    MoveStop,
    Planned,
    SizingRules,
    Skip,
    SymbolView,
    decide_symbol,
    plan,
    plan_entry,
)
from trendbotd.core.records import DailyStart, TradingMode
from trendbotd.core.strategy import Action, Decision, Direction

D = Decimal
SYMBOL = "BTC/USDT:USDT"
MARKET = Market(SYMBOL, "BTCUSDT", D("0.001"), D("0.1"), D("0.001"), D(5))
NOW = 1_700_000_000_000
CANDLE = NOW - 3_600_000
LONG = Position(SYMBOL, D("0.010"), D(50000))
RULES = SizingRules(risk_per_trade=0.01, max_leverage=3, max_notional=D(50000))


def view(position: Position | None = None, *stops: tuple[str, str]) -> SymbolView:
    live = [LiveStop(D(p), D(a)) for p, a in stops]
    return SymbolView(position, live[-1].price if live else None, live, MARKET)


@pytest.mark.parametrize(
    ("decision", "symbol_view", "expected"),
    [
        (Decision(Action.HOLD), view(LONG), []),
        (Decision(Action.EXIT, reason="exit signal"), view(LONG), [Close("exit signal")]),
        (Decision(Action.EXIT, reason="exit signal"), view(None), []),
        (
            Decision(Action.REVERSE, Direction.SHORT, 51000.0, "reverse to short"),
            view(LONG),
            [Close("reverse to short", reverse=True),
             EntryDue(Direction.SHORT, 51000.0, "reverse to short")],
        ),
        (
            Decision(Action.ENTER, Direction.LONG, 49000.0, "long entry signal"),
            view(None),
            [EntryDue(Direction.LONG, 49000.0, "long entry signal")],
        ),
        (Decision(Action.ENTER, Direction.FLAT, 49000.0), view(None), []),
        (Decision(Action.ENTER, Direction.LONG, None), view(None), []),
        # a trail rounds down for a long (never tighter than decided)
        (
            Decision(Action.MOVE_STOP, Direction.LONG, 49500.07, "trail"),
            view(LONG, ("49000.0", "0.010")),
            [MoveStop(D("49500.0"), long=True)],
        ),
        # and up for a short
        (
            Decision(Action.MOVE_STOP, Direction.SHORT, 50500.01, "trail"),
            view(Position(SYMBOL, D("-0.010"), D(50000)), ("51000.0", "0.010")),
            [MoveStop(D("50500.1"), long=False)],
        ),
        # the same stop already live: nothing to do
        (
            Decision(Action.MOVE_STOP, Direction.LONG, 49500.04, "trail"),
            view(LONG, ("49500.0", "0.010")),
            [],
        ),
        # same price but a different amount (a partial fill since): replaced
        (
            Decision(Action.MOVE_STOP, Direction.LONG, 49500.0, "trail"),
            view(LONG, ("49500.0", "0.020")),
            [MoveStop(D("49500.0"), long=True)],
        ),
        (Decision(Action.MOVE_STOP, Direction.LONG, 49500.0), view(None), []),
    ],
)  # fmt: skip
def test_plan(decision: Decision, symbol_view: SymbolView, expected: list[Planned]) -> None:
    assert plan(decision, symbol_view) == expected


def entry(
    equity: str | None = "10000", *, price: str = "50000", guards: GuardInputs | None = None
) -> EntryView:
    return EntryView(
        symbol=SYMBOL,
        candle_time_ms=CANDLE,
        price=D(price),
        equity=None if equity is None else D(equity),
        market=MARKET,
        sizing=RULES,
        guards=guards,
    )


def guard_inputs(*, risk: RiskConfig | None = None, **changes: object) -> GuardInputs:
    start = DailyStart(NOW // 86_400_000, D(10000))
    balance = Balance("USDT", D(10000), D(10000))
    context = GuardContext(NOW, TradingMode.NORMAL, balance, {}, {}, (), start, leverage=3)
    context = dataclasses.replace(context, **changes)  # type: ignore[arg-type]
    return GuardInputs("bot", context, risk or RiskConfig())


LONG_DUE = EntryDue(Direction.LONG, 49000.0, "long entry signal")


@pytest.mark.parametrize(
    ("due", "entry_view", "expected"),
    [
        # 1% of 10000 over a 1000 distance: 0.1, capped by max_notional 50000 / 50000 = 1
        (LONG_DUE, entry(), Enter(Side.BUY, D("0.100"), D("50000.0"), D("49000.0"))),
        (
            EntryDue(Direction.SHORT, 51000.0, "short entry signal"),
            entry(),
            Enter(Side.SELL, D("0.100"), D("50000.0"), D("51000.0")),
        ),
        (LONG_DUE, entry(None), Block("balance_sanity", "balance unknown: no new entries")),
        (LONG_DUE, entry("0.01"), Skip("amount 0.000 below the minimum 0.001 of " + SYMBOL)),
        (
            LONG_DUE,
            entry("0"),
            Skip("equity 0 is not positive"),
        ),
    ],
)
def test_plan_entry_sizes(due: EntryDue, entry_view: EntryView, expected: object) -> None:
    assert plan_entry(due, entry_view) == expected


def test_an_allowed_entry_carries_its_client_order_id() -> None:
    outcome = plan_entry(LONG_DUE, entry(guards=guard_inputs()))
    assert isinstance(outcome, Enter) and outcome.amount == D("0.100")
    assert outcome.client_order_id.startswith("tb-")


@pytest.mark.parametrize(
    ("changes", "guard", "alert"),
    [
        ({"mode": TradingMode.HALTED}, "trading_mode", False),
        ({"mode": TradingMode.REDUCE_ONLY}, "trading_mode", False),
        ({"risk": RiskConfig(reduce_only=True)}, "trading_mode", False),
        ({"daily_start": DailyStart(NOW // 86_400_000, D(20000))}, "daily_loss", True),
        ({"balance": None}, "balance_sanity", False),
    ],
)
def test_a_guard_blocks_the_entry_with_its_reason(
    changes: dict[str, object], guard: str, alert: bool
) -> None:
    outcome = plan_entry(LONG_DUE, entry(guards=guard_inputs(**changes)))
    assert isinstance(outcome, Block)
    assert (outcome.guard, outcome.alert) == (guard, alert)
    assert outcome.reason and outcome.client_order_id


def test_decide_symbol_holds_while_warming_up() -> None:
    candles = [Candle(CANDLE - i * 3_600_000, 1.0, 1.0, 1.0, 1.0, 1.0) for i in range(5)][::-1]
    decision = decide_symbol(candles, StrategyParams(), view(None))
    assert decision.action is Action.HOLD and "warming up" in decision.reason
