"""Startup sync through the real ccxt adapter against the simulated exchange."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from exchange_helpers import PRICE, SYMBOL, adapter, requests_to
from support.startup_steps import STARTUP_STEPS, RecordedProgress

from trendbotd.adapters.ccxt_exchange import CcxtExchange
from trendbotd.adapters.clock import SystemClock
from trendbotd.core.domain import AccountMode, AccountSnapshot
from trendbotd.errors import ExchangeAuthError, StartupSyncError, UnsupportedAccountModeError
from trendbotd.sim import Fault, SimConfig, SimExchange
from trendbotd.trading.startup import StartupBackoff, sync_account

ETH = "ETH/USDT:USDT"
SYMBOLS = (SYMBOL, ETH)
FAST = StartupBackoff(first_s=0.05, max_s=0.2)


@pytest.fixture
def sim() -> Iterator[SimExchange]:
    with SimExchange(SimConfig(symbols=SYMBOLS, seed=21)) as s:
        s.account.set_price(SYMBOL, PRICE)
        s.account.set_price(ETH, Decimal(2000))
        yield s


def sync(
    sim: SimExchange,
    progress: RecordedProgress,
    *,
    within_s: float = 10,
    exchange: CcxtExchange | None = None,
    **kw: Any,
) -> AccountSnapshot:
    clock = SystemClock()
    return sync_account(
        exchange=exchange or adapter(sim, **kw),
        symbols=SYMBOLS,
        progress=progress,
        clock=clock,
        deadline_ms=clock.now_ms() + int(within_s * 1000),
        max_clock_offset_ms=500,
        backoff=FAST,
    )


def seed_account(sim: SimExchange) -> None:
    """A live account: a long BTC position with its stop and a resting entry, a short ETH."""
    account = sim.account
    account.set_position(SYMBOL, Decimal("0.4"), Decimal(28000))
    account.set_position(ETH, Decimal("-5"), Decimal(2100))
    account.place_order(SYMBOL, "SELL", "stop_market", Decimal("0.4"), stop_price=Decimal(27000),
                        client_order_id="tb-btc-stop", reduce_only=True)  # fmt: skip
    account.place_order(SYMBOL, "BUY", "limit", Decimal("0.1"), Decimal(29500),
                        client_order_id="tb-btc-add")  # fmt: skip
    account.place_order(ETH, "BUY", "stop_market", Decimal("5"), stop_price=Decimal(2200),
                        client_order_id="tb-eth-stop", reduce_only=True)  # fmt: skip
    account.place_order(ETH, "SELL", "limit", Decimal("1"), Decimal(2300))  # a manual order


def test_snapshot_equals_the_exchange_state(sim: SimExchange) -> None:
    seed_account(sim)
    progress = RecordedProgress()
    snap = sync(sim, progress)
    assert progress.steps == STARTUP_STEPS
    assert progress.waits == []
    assert snap.mode is AccountMode.ONE_WAY
    assert abs(snap.clock.offset_ms) <= 50
    assert snap.balance == sim.account.balance()
    got = {p.symbol: (p.amount, p.entry_price, p.unrealized_pnl) for p in snap.positions}
    want = {p.symbol: (p.amount, p.entry_price, p.unrealized_pnl) for p in sim.account.positions()}
    assert got == want
    assert got[SYMBOL] == (Decimal("0.4"), Decimal(28000), Decimal(800))
    key = lambda o: (o.symbol, o.conditional, o.client_order_id)  # noqa: E731
    assert sorted(snap.open_orders, key=key) == sorted(sim.account.open_orders(), key=key)
    assert len(snap.open_orders) == 4
    assert sum(o.conditional for o in snap.open_orders) == 2
    assert set(snap.markets) == set(SYMBOLS)
    assert snap.position(SYMBOL) is not None


def test_skewed_exchange_clock_is_refused_at_startup(sim: SimExchange) -> None:
    sim.set_clock_skew_ms(20_000)
    progress = RecordedProgress()
    with pytest.raises(StartupSyncError, match="'syncing time'") as excinfo:
        sync(sim, progress, within_s=0.6)
    assert "exceeds the bound of 500 ms" in str(excinfo.value)
    assert progress.steps == ["syncing time"]
    assert progress.waits  # it kept trying until the deadline
    assert requests_to(sim, "GET", "/fapi/v3/account") == []


def test_small_skew_is_measured_and_used(sim: SimExchange) -> None:
    sim.set_clock_skew_ms(300)
    snap = sync(sim, RecordedProgress())
    assert 250 <= snap.clock.offset_ms <= 350
    # every signed request was accepted: the offset was applied to the timestamps
    assert all(r.accepted for r in sim.requests)


@pytest.mark.parametrize(
    ("path", "step"),
    [
        ("/fapi/v3/account", "syncing balance"),
        ("/fapi/v3/positionRisk", "syncing positions"),
        ("/fapi/v1/openAlgoOrders", "syncing open orders"),
    ],
)
def test_a_fetch_that_keeps_failing_raises_instead_of_reading_flat(
    sim: SimExchange, path: str, step: str
) -> None:
    seed_account(sim)
    sim.faults.add(Fault(path=path, kind="http_status", status=503, times=None))
    progress = RecordedProgress()
    with pytest.raises(StartupSyncError, match=f"'{step}'") as excinfo:
        sync(sim, progress, within_s=0.8)
    assert "TransientExchangeError" in str(excinfo.value)
    assert "503" in str(excinfo.value)
    assert progress.steps[-1] == step
    assert len(progress.waits) >= 2
    assert len([r for r in sim.requests if r.path == path]) >= 3


def test_dropped_connections_recover_before_the_deadline(sim: SimExchange) -> None:
    seed_account(sim)
    sim.faults.add(Fault(path="/fapi/v3/positionRisk", kind="drop_before", times=5))
    progress = RecordedProgress()
    snap = sync(sim, progress)
    assert len(snap.positions) == 2
    assert progress.waits  # the adapter's own retries (3) were not enough: startup waited


def test_each_startup_read_is_one_request_the_step_retries(sim: SimExchange) -> None:
    seed_account(sim)
    sim.faults.add(Fault(path="/fapi/v3/account", kind="http_status", status=502, times=2))
    exchange = adapter(sim)  # whose reads retry 3 times on their own
    progress = RecordedProgress()
    snap = sync(sim, progress, exchange=exchange)
    assert snap.balance == sim.account.balance()
    assert len(progress.waits) == 2  # each failed request cost one step attempt ...
    assert len(requests_to(sim, "GET", "/fapi/v3/account")) == 3  # ... and one request
    # after startup the adapter's reads retry on their own again
    sim.faults.add(Fault(path="/fapi/v3/account", kind="http_status", status=502, times=1))
    assert exchange.fetch_balance() == snap.balance
    assert len(requests_to(sim, "GET", "/fapi/v3/account")) == 5


def test_hedge_mode_is_refused_at_once(sim: SimExchange) -> None:
    sim.state.set_hedge_mode(True)
    progress = RecordedProgress()
    with pytest.raises(UnsupportedAccountModeError, match="hedge"):
        sync(sim, progress)
    assert progress.waits == []
    assert progress.steps == STARTUP_STEPS[:2]


def test_multi_assets_mode_is_refused_at_once(sim: SimExchange) -> None:
    sim.state.set_multi_assets(True)
    with pytest.raises(UnsupportedAccountModeError, match="multi-assets"):
        sync(sim, RecordedProgress())


def test_bad_credentials_fail_at_once(sim: SimExchange) -> None:
    progress = RecordedProgress()
    with pytest.raises(ExchangeAuthError):
        sync(sim, progress, api_key="not-the-key")
    assert progress.waits == []
    assert len(requests_to(sim, "GET", "/fapi/v1/positionSide/dual")) == 1


class _SleepRecordingClock(SystemClock):
    def __init__(self) -> None:
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        super().sleep(seconds)


def test_rate_limiter_lets_the_startup_burst_through_unpaced(sim: SimExchange) -> None:
    # ccxt's own throttle would sleep ~1.5 s here (two weight-30 mode endpoints).
    clock = _SleepRecordingClock()
    exchange = adapter(sim, clock=clock, rate_limit=True)
    sync_account(
        exchange=exchange,
        symbols=SYMBOLS,
        progress=RecordedProgress(),
        clock=clock,
        deadline_ms=clock.now_ms() + 10_000,
        max_clock_offset_ms=500,
    )
    assert clock.slept == []
