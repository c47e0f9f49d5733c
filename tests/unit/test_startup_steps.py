"""Startup sync step logic against a scripted exchange and a manual clock (instant waits).

tests/integration/test_startup_sync.py runs the same function through real ccxt and HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
from support.startup_steps import STARTUP_STEPS, RecordedProgress

from trendbotd.core.clock import ManualClock
from trendbotd.core.domain import (
    AccountMode,
    Balance,
    Candle,
    ClockOffset,
    Market,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    Side,
)
from trendbotd.errors import (
    ExchangeAuthError,
    RateLimitedError,
    StartupSyncError,
    TransientExchangeError,
    UnsupportedAccountModeError,
)
from trendbotd.trading.startup import StartupBackoff, sync_account

SYMBOL = "BTC/USDT:USDT"
START = 1_700_000_000_000
MARKET = Market(SYMBOL, "BTCUSDT", Decimal("0.001"), Decimal("0.1"), Decimal("0.001"), Decimal(5))
POSITION = Position(SYMBOL, Decimal("0.5"), Decimal(30000))
STOP = Order(
    SYMBOL, Side.SELL, OrderType.STOP_MARKET, Decimal("0.5"), Decimal(0), OrderStatus.OPEN,
    "tb-stop", "9", stop_price=Decimal(29000), reduce_only=True, conditional=True,
)  # fmt: skip


class ScriptedExchange:
    """Each method pops its next scripted outcome (an exception is raised); the last one
    repeats. Calls are recorded by name."""

    def __init__(self, clock: ManualClock, **script: list[Any]) -> None:
        self.clock = clock
        self.calls: list[str] = []
        self.tried_once = False  # inside reads_tried_once()
        self.calls_retried_by_the_adapter: list[str] = []
        self.script: dict[str, list[Any]] = {
            "measure_clock": [ClockOffset(12, 3, START, 5)],
            "fetch_account_mode": [AccountMode.ONE_WAY],
            "load_markets": [{SYMBOL: MARKET}],
            "fetch_balance": [Balance("USDT", Decimal(1000), Decimal(900))],
            "fetch_positions": [[POSITION]],
            "fetch_open_orders": [[STOP]],
            **script,
        }

    def _next(self, name: str) -> Any:
        self.calls.append(name)
        if not self.tried_once:
            self.calls_retried_by_the_adapter.append(name)
        outcomes = self.script[name]
        outcome = outcomes.pop(0) if len(outcomes) > 1 else outcomes[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def measure_clock(self) -> ClockOffset:
        offset: ClockOffset = self._next("measure_clock")
        return ClockOffset(offset.offset_ms, offset.uncertainty_ms, self.clock.now_ms(), 5)

    def fetch_account_mode(self) -> AccountMode:
        mode: AccountMode = self._next("fetch_account_mode")
        return mode

    def load_markets(self, symbols: Sequence[str]) -> dict[str, Market]:
        markets: dict[str, Market] = self._next("load_markets")
        return markets

    def fetch_balance(self) -> Balance:
        balance: Balance = self._next("fetch_balance")
        return balance

    def fetch_positions(self, symbols: Sequence[str]) -> list[Position]:
        positions: list[Position] = self._next("fetch_positions")
        return positions

    def fetch_open_orders(self, symbols: Sequence[str]) -> list[Order]:
        orders: list[Order] = self._next("fetch_open_orders")
        return orders

    # not used by startup
    def server_now_ms(self) -> int:
        return self.clock.now_ms()

    def fetch_candles(self, symbol: str, *, timeframe: str, since_ms: int | None,
                      limit: int) -> list[Candle]:  # fmt: skip
        raise AssertionError("not a startup call")

    def create_order(self, request: OrderRequest) -> Order:
        raise AssertionError("startup must never place an order")

    def fetch_order_by_client_id(self, symbol: str, client_order_id: str, *,
                                 conditional: bool) -> Order | None:  # fmt: skip
        raise AssertionError("not a startup call")

    def cancel_order_by_client_id(self, symbol: str, client_order_id: str, *,
                                  conditional: bool) -> Order:  # fmt: skip
        raise AssertionError("startup must never cancel")

    def set_leverage(self, symbol: str, leverage: int) -> None:
        raise AssertionError("not a startup call")

    @contextmanager
    def reads_tried_once(self) -> Iterator[None]:
        self.tried_once = True
        try:
            yield
        finally:
            self.tried_once = False

    def close(self) -> None:
        return None


def run(exchange: ScriptedExchange, clock: ManualClock, progress: RecordedProgress, *,
        deadline_s: float = 60, max_offset: int = 500) -> Any:  # fmt: skip
    return sync_account(
        exchange=exchange,
        symbols=[SYMBOL],
        progress=progress,
        clock=clock,
        deadline_ms=START + int(deadline_s * 1000),
        max_clock_offset_ms=max_offset,
        backoff=StartupBackoff(first_s=0.5, max_s=4),
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


def test_happy_path_announces_every_step_in_order(clock: ManualClock) -> None:
    progress = RecordedProgress()
    snap = run(ScriptedExchange(clock), clock, progress)
    assert progress.steps == STARTUP_STEPS
    assert progress.waits == []
    assert snap.clock.offset_ms == 12
    assert snap.mode is AccountMode.ONE_WAY
    assert snap.balance.total == 1000
    assert snap.positions == (POSITION,)
    assert snap.open_orders == (STOP,)
    assert snap.markets == {SYMBOL: MARKET}


def test_clock_out_of_bound_is_measured_again_until_within(clock: ManualClock) -> None:
    far = ClockOffset(20_000, 3, START, 5)
    ex = ScriptedExchange(clock, measure_clock=[far, far, ClockOffset(40, 3, START, 5)])
    progress = RecordedProgress()
    snap = run(ex, clock, progress)
    assert snap.clock.offset_ms == 40
    assert ex.calls.count("measure_clock") == 3
    assert progress.waits == [0.5, 1.0]
    # nothing else was asked before the clock was good
    assert ex.calls[:3] == ["measure_clock"] * 3


def test_clock_never_within_bound_fails_at_the_deadline(clock: ManualClock) -> None:
    ex = ScriptedExchange(clock, measure_clock=[ClockOffset(20_000, 3, START, 5)])
    progress = RecordedProgress()
    with pytest.raises(StartupSyncError, match="syncing time") as excinfo:
        run(ex, clock, progress, deadline_s=10)
    assert "ClockNotSyncedError" in str(excinfo.value)
    assert "20000 ms exceeds" in str(excinfo.value)
    assert clock.now_ms() == START + 10_000  # waited exactly up to the deadline, not past
    assert sum(progress.waits) == pytest.approx(10)
    assert "fetch_balance" not in ex.calls


@pytest.mark.parametrize("failing", ["fetch_balance", "fetch_positions", "fetch_open_orders"])
def test_a_fetch_that_keeps_failing_is_never_read_as_flat(clock: ManualClock, failing: str) -> None:
    ex = ScriptedExchange(clock, **{failing: [TransientExchangeError("gateway 502")]})
    progress = RecordedProgress()
    step = {
        "fetch_balance": "syncing balance",
        "fetch_positions": "syncing positions",
        "fetch_open_orders": "syncing open orders",
    }[failing]
    with pytest.raises(StartupSyncError, match=step) as excinfo:
        run(ex, clock, progress, deadline_s=20)
    assert "TransientExchangeError: gateway 502" in str(excinfo.value)
    assert isinstance(excinfo.value.__cause__, TransientExchangeError)
    assert ex.calls.count(failing) > 3
    assert progress.steps[-1] == step
    assert all(w > 0 for w in progress.waits)


def test_transient_failure_then_success(clock: ManualClock) -> None:
    ex = ScriptedExchange(
        clock,
        fetch_positions=[TransientExchangeError("reset"), TransientExchangeError("reset"),
                         [POSITION]],
    )  # fmt: skip
    progress = RecordedProgress()
    snap = run(ex, clock, progress)
    assert snap.positions == (POSITION,)
    assert progress.waits == [0.5, 1.0]


def test_the_step_is_the_only_level_that_retries(clock: ManualClock) -> None:
    ex = ScriptedExchange(
        clock, fetch_balance=[TransientExchangeError("502"), Balance("USDT", 1, 1)]
    )
    run(ex, clock, RecordedProgress())
    assert ex.calls.count("fetch_balance") == 2
    assert ex.calls_retried_by_the_adapter == []  # every read was one request
    assert not ex.tried_once  # and the adapter retries again after startup


def test_rate_limit_waits_at_least_retry_after(clock: ManualClock) -> None:
    ex = ScriptedExchange(
        clock, fetch_balance=[RateLimitedError("429", retry_after_s=7), Balance("USDT", 1, 1)]
    )
    progress = RecordedProgress()
    run(ex, clock, progress)
    assert progress.waits == [7]


def test_auth_error_is_raised_at_once(clock: ManualClock) -> None:
    ex = ScriptedExchange(clock, fetch_balance=[ExchangeAuthError("-2015 invalid key")])
    progress = RecordedProgress()
    with pytest.raises(ExchangeAuthError):
        run(ex, clock, progress)
    assert ex.calls.count("fetch_balance") == 1
    assert progress.waits == []


def test_hedge_mode_is_refused_with_the_reason(clock: ManualClock) -> None:
    ex = ScriptedExchange(clock, fetch_account_mode=[AccountMode.HEDGE])
    with pytest.raises(UnsupportedAccountModeError, match="hedge position mode"):
        run(ex, clock, RecordedProgress())
    assert "load_markets" not in ex.calls


def test_multi_assets_from_the_adapter_is_not_retried(clock: ManualClock) -> None:
    ex = ScriptedExchange(
        clock, fetch_account_mode=[UnsupportedAccountModeError("multi-assets margin mode")]
    )
    progress = RecordedProgress()
    with pytest.raises(UnsupportedAccountModeError, match="multi-assets"):
        run(ex, clock, progress)
    assert ex.calls.count("fetch_account_mode") == 1
    assert progress.waits == []


def test_a_bug_is_not_retried_or_disguised(clock: ManualClock) -> None:
    ex = ScriptedExchange(clock, fetch_balance=[KeyError("assets")])
    with pytest.raises(KeyError):
        run(ex, clock, RecordedProgress())
    assert ex.calls.count("fetch_balance") == 1
