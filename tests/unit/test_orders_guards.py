from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from trendbotd.config import RiskConfig
from trendbotd.core import guards
from trendbotd.core.domain import Balance, OrderType, Position, Side
from trendbotd.core.guards import GuardContext, ProposedOrder
from trendbotd.core.records import DailyStart, Intent, IntentState, Purpose, TradingMode

SYM = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"
NOW = 10 * guards.DAY_MS + 3_600_000
D = Decimal


def order(purpose: Purpose = Purpose.ENTRY, **kw: object) -> ProposedOrder:
    values: dict[str, object] = {
        "symbol": SYM,
        "side": Side.BUY,
        "type": OrderType.MARKET,
        "amount": D("0.1"),
        "purpose": purpose,
        "reference_price": D(50000),
        "client_order_id": "new",
    }
    values.update(kw)
    return ProposedOrder(**values)  # type: ignore[arg-type]


ENTRY = order()
EXIT = order(Purpose.EXIT, side=Side.SELL)
STOP = order(Purpose.STOP, side=Side.SELL, type=OrderType.STOP_MARKET)


def past(cid: str, age_s: float, state: IntentState = IntentState.FILLED, **kw: object) -> Intent:
    values: dict[str, object] = {
        "client_order_id": cid,
        "symbol": SYM,
        "side": Side.BUY,
        "type": OrderType.MARKET,
        "amount": D("0.1"),
        "purpose": Purpose.ENTRY,
        "candle_time_ms": 0,
        "seq": 0,
        "state": state,
        "created_ms": NOW - int(age_s * 1000),
        "updated_ms": NOW,
    }
    values.update(kw)
    return Intent(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("mode", "proposed", "allowed"),
    [
        (TradingMode.NORMAL, ENTRY, True),
        (TradingMode.REDUCE_ONLY, ENTRY, False),
        (TradingMode.REDUCE_ONLY, EXIT, True),
        (TradingMode.REDUCE_ONLY, STOP, True),
        # the operator's halt: no entries, but exits and stops keep positions protected
        (TradingMode.HALTED, EXIT, True),
        (TradingMode.HALTED, STOP, True),
        (TradingMode.HALTED, ENTRY, False),
    ],
)
def test_trading_mode(mode: TradingMode, proposed: ProposedOrder, allowed: bool) -> None:
    assert guards.trading_mode(proposed, mode=mode).allowed is allowed


@pytest.mark.parametrize(("proposed", "allowed"), [(ENTRY, False), (EXIT, True), (STOP, True)])
def test_the_config_reduce_only_switch_blocks_entries_only(
    proposed: ProposedOrder, allowed: bool
) -> None:
    result = guards.trading_mode(proposed, mode=TradingMode.NORMAL, config_reduce_only=True)
    assert result.allowed is allowed
    if not allowed:
        assert "risk.reduce_only" in result.reason


@pytest.mark.parametrize(
    ("recent", "allowed"),
    [
        ([], True),
        ([past("old", 30)], False),  # same everything within 60 s
        ([past("old", 61)], True),  # outside the window
        ([past("old", 30, IntentState.REJECTED)], True),  # never became an order
        ([past("old", 30, IntentState.ABANDONED)], True),  # confirmed absent
        ([past("old", 30, IntentState.UNKNOWN)], False),  # may well exist
        ([past("new", 1)], True),  # the same intent (same id) is not a duplicate
        ([past("old", 30, side=Side.SELL)], True),
        ([past("old", 30, amount=D("0.2"))], True),
        ([past("old", 30, type=OrderType.LIMIT)], True),
        ([past("old", 30, symbol=ETH)], True),
        ([past("old", 30, purpose=Purpose.EXIT)], True),  # a reversal's close, then entry
    ],
)
def test_duplicate_order(recent: list[Intent], allowed: bool) -> None:
    result = guards.duplicate_order(ENTRY, recent, now_ms=NOW, window_s=60)
    assert result.allowed is allowed
    if not allowed:
        assert "old" in result.reason


@pytest.mark.parametrize(
    ("proposed", "actual", "expected", "allowed", "alert"),
    [
        (ENTRY, D(0), D(0), True, False),
        (ENTRY, D("0.1"), D("0.1"), True, False),
        (ENTRY, D("0.2"), D("0.1"), True, False),  # exactly 2x: allowed
        (ENTRY, D("0.21"), D("0.1"), False, True),
        (ENTRY, D("-0.21"), D("-0.1"), False, True),
        (ENTRY, D("0.1"), D(0), False, True),  # a position nobody expects
        (EXIT, D("5"), D("0.1"), True, False),  # exits are never blocked
    ],
)
def test_position_size(
    proposed: ProposedOrder, actual: Decimal, expected: Decimal, allowed: bool, alert: bool
) -> None:
    result = guards.position_size(proposed, actual=actual, expected=expected, max_ratio=2.0)
    assert (result.allowed, result.alert) == (allowed, alert)


@pytest.mark.parametrize(
    ("proposed", "balance", "allowed", "words"),
    [
        (ENTRY, Balance("USDT", D(1000), D(900)), True, ""),
        (ENTRY, None, False, "unavailable"),
        (EXIT, None, True, ""),
        (ENTRY, Balance("USDT", D(5), D(5)), False, "plausible minimum"),
        (ENTRY, Balance("USDT", D(0), D(0)), False, "plausible minimum"),
        (ENTRY, Balance("USDT", D(1000), D(2000)), False, "implausible"),
        (ENTRY, Balance("USDT", D("NaN"), D(1)), False, "finite"),
        (ENTRY, Balance("USDT", D(1000), D(0)), False, "free margin"),
        (STOP, Balance("USDT", D(-5), D(-5)), True, ""),
    ],
)
def test_balance_sanity(
    proposed: ProposedOrder, balance: Balance | None, allowed: bool, words: str
) -> None:
    result = guards.balance_sanity(proposed, balance=balance, min_balance=D(10))
    assert result.allowed is allowed
    assert words in result.reason


@pytest.mark.parametrize(
    ("proposed", "equity", "start", "allowed"),
    [
        (ENTRY, D(9600), DailyStart(10, D(10000)), True),
        (ENTRY, D(9500), DailyStart(10, D(10000)), True),  # exactly at the limit
        (ENTRY, D("9499.99"), DailyStart(10, D(10000)), False),
        (EXIT, D(1), DailyStart(10, D(10000)), True),
        (ENTRY, None, DailyStart(10, D(10000)), False),
        (ENTRY, D(10000), None, False),
    ],
)
def test_daily_loss_kill_switch(
    proposed: ProposedOrder, equity: Decimal | None, start: DailyStart | None, allowed: bool
) -> None:
    result = guards.daily_loss(proposed, equity=equity, start=start, limit=0.05)
    assert result.allowed is allowed
    if start is not None and equity is not None and not allowed:
        assert result.alert
        assert "next UTC day" in result.reason


def test_kill_switch_lifts_on_the_next_utc_day_or_a_resume() -> None:
    start = DailyStart(guards.utc_day(NOW), D(10000))
    assert not guards.daily_loss(ENTRY, equity=D(9000), start=start, limit=0.05).allowed
    same_day = guards.roll_daily_start(start, now_ms=NOW + 1000, equity=D(9000))
    assert same_day == start
    tomorrow = guards.roll_daily_start(start, now_ms=NOW + guards.DAY_MS, equity=D(9000))
    assert tomorrow == DailyStart(start.day + 1, D(9000))
    assert guards.daily_loss(ENTRY, equity=D(9000), start=tomorrow, limit=0.05).allowed
    resumed = guards.resume_daily_start(now_ms=NOW, equity=D(9000))
    assert guards.daily_loss(ENTRY, equity=D(9000), start=resumed, limit=0.05).allowed
    assert guards.roll_daily_start(None, now_ms=NOW, equity=None) is None
    assert guards.roll_daily_start(None, now_ms=NOW, equity=D(5)) == DailyStart(
        guards.utc_day(NOW), D(5)
    )


@pytest.mark.parametrize(
    ("proposed", "open_symbols", "allowed"),
    [
        (ENTRY, [], True),
        (ENTRY, [ETH, "SOL/USDT:USDT"], True),
        (ENTRY, [ETH, "SOL/USDT:USDT", "XRP/USDT:USDT"], False),
        (ENTRY, [SYM, ETH, "SOL/USDT:USDT"], True),  # adding to its own symbol
        (EXIT, [ETH, "SOL/USDT:USDT", "XRP/USDT:USDT"], True),
    ],
)
def test_max_open_positions(
    proposed: ProposedOrder, open_symbols: list[str], allowed: bool
) -> None:
    assert (
        guards.max_open_positions(proposed, open_symbols=open_symbols, max_open=3).allowed
        is allowed
    )


@pytest.mark.parametrize(
    ("proposed", "positions", "equity", "leverage", "allowed", "words"),
    [
        (ENTRY, {}, D(10000), 3, True, ""),  # 5000 notional on 10000 equity
        (ENTRY, {}, D(10000), 6, False, "account leverage"),
        (order(amount=D("1.1")), {}, D(100000), 3, False, "notional"),  # 55000 > 50000
        (ENTRY, {ETH: Position(ETH, D(18), D(2300))}, D(10000), 3, True, ""),  # 46400/10000
        (ENTRY, {ETH: Position(ETH, D(18), D(2300))}, D(9000), 3, False, "effective leverage"),
        (ENTRY, {}, None, 3, False, "equity unknown"),
        (EXIT, {}, None, 50, True, ""),
    ],
)
def test_max_leverage(  # noqa: PLR0917 - one parameter per table column
    proposed: ProposedOrder,
    positions: dict[str, Position],
    equity: Decimal | None,
    leverage: int,
    allowed: bool,
    words: str,
) -> None:
    result = guards.max_leverage(
        proposed,
        positions=positions,
        equity=equity,
        leverage=leverage,
        max_leverage=5,
        max_notional=D(50000),
    )
    assert result.allowed is allowed
    assert words in result.reason


def test_check_all_reports_every_guard_and_first_block() -> None:
    ctx = GuardContext(
        now_ms=NOW,
        mode=TradingMode.NORMAL,
        balance=Balance("USDT", D(10000), D(9000)),
        positions={},
        expected={},
        recent=[],
        daily_start=DailyStart(guards.utc_day(NOW), D(10000)),
        leverage=3,
    )
    results = guards.check_all(ENTRY, ctx, RiskConfig())
    assert [r.guard for r in results] == [
        "trading_mode",
        "duplicate_order",
        "position_size",
        "balance_sanity",
        "daily_loss",
        "max_open_positions",
        "max_leverage",
    ]
    assert guards.first_block(results) is None
    blocked = guards.check_all(
        ENTRY, dataclasses.replace(ctx, mode=TradingMode.REDUCE_ONLY, balance=None), RiskConfig()
    )
    first = guards.first_block(blocked)
    assert first is not None
    assert first.guard == "trading_mode"
    assert {r.guard for r in blocked if not r.allowed} >= {"trading_mode", "balance_sanity"}
    # an exit under the same bad conditions passes every risk guard but the mode check
    exit_results = guards.check_all(EXIT, dataclasses.replace(ctx, balance=None), RiskConfig())
    assert guards.first_block(exit_results) is None
