"""The request-weight governor against the simulated exchange, through real ccxt.

The simulator counts Binance's weights, answers 429 with Retry-After past its limit and
bans (418) a client that keeps sending during that pause; the adapter's governor keeps
below its share of the limit, shares the budget through a file, and lets protective
orders use the reserve that entries and candles may not touch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import ccxt
import pytest
from exchange_helpers import (
    PRICE,
    SYMBOL,
    adapter,
    market,
    requests_to,
    stop,
)
from support.daemon_harness import wait_until
from support.sim_ccxt import client
from support.startup_steps import RecordedProgress

from trendbotd.adapters.budget_file import LocalBudget, SharedBudgetFile
from trendbotd.adapters.ccxt_exchange import CcxtExchange
from trendbotd.adapters.clock import SystemClock
from trendbotd.adapters.governor import GovernorSettings
from trendbotd.adapters.weight_budget import BudgetLimits, BudgetState
from trendbotd.errors import RateLimitedError, RequestHeldError
from trendbotd.sim import SimConfig, SimExchange
from trendbotd.trading.startup import sync_account

LIMIT = 60  # the simulator's weight per minute
KLINES = {"limit": 1000}  # Binance: weight 5


def _settings(store: LocalBudget | SharedBudgetFile, **limits: int) -> GovernorSettings:
    return GovernorSettings(
        limits=BudgetLimits(weight_per_window=LIMIT, **limits), store=store, max_wait_s=0
    )


@pytest.fixture
def tight() -> Iterator[SimExchange]:
    sim = SimExchange(
        SimConfig(symbols=(SYMBOL,), seed=3, weight_limit_per_minute=LIMIT, ban_grace_ms=0)
    ).start()
    sim.account.set_price(SYMBOL, PRICE)
    yield sim
    sim.stop()


def _statuses(sim: SimExchange) -> list[int]:
    return [r.status for r in sim.requests]


def _peak_weight(sim: SimExchange) -> int:
    """The highest used weight the exchange reported; the window's rollover resets it."""
    return max(r.used_weight for r in sim.requests)


def _candles_until_held(ex: CcxtExchange, *, most: int = 40) -> int:
    """Candle reads (weight 5 each) until the governor holds one back; how many went."""
    for sent in range(most):
        try:
            ex.fetch_candles(SYMBOL, timeframe="1h", since_ms=None, limit=KLINES["limit"])
        except RequestHeldError:
            return sent
    raise AssertionError(f"{most} candle reads and none held back")


def test_the_sim_sends_retry_after_and_bans_a_client_that_ignores_it(
    tight: SimExchange,
) -> None:
    ex = client(tight)
    ex.fetch_time()
    assert ex.last_response_headers["X-MBX-USED-WEIGHT-1M"] == "1"
    with pytest.raises(ccxt.DDoSProtection):
        for _ in range(LIMIT):
            ex.fetch_ohlcv(SYMBOL, "1h", limit=KLINES["limit"])
    assert int(ex.last_response_headers["Retry-After"]) >= 1
    with pytest.raises(ccxt.DDoSProtection, match="418"):
        ex.fetch_time()  # sent during the pause: banned
    assert int(ex.last_response_headers["Retry-After"]) >= 120
    assert _statuses(tight)[-2:] == [429, 418]


def test_governed_reads_stay_below_the_share_and_never_see_a_429(tight: SimExchange) -> None:
    ex = adapter(tight, governor=_settings(LocalBudget()))
    sent = _candles_until_held(ex)
    assert sent >= 1
    # Not a count of reads: a minute that rolls over mid-test rightly allows a second share.
    assert 5 <= _peak_weight(tight) <= int(0.8 * LIMIT)
    assert 429 not in _statuses(tight) and 418 not in _statuses(tight)


def test_instances_sharing_the_budget_file_stay_below_the_limit_together(
    tight: SimExchange, tmp_path: Path
) -> None:
    path = tmp_path / "ratelimit.json"
    first = adapter(tight, governor=_settings(SharedBudgetFile(path)))
    second = adapter(tight, governor=_settings(SharedBudgetFile(path)))
    assert _candles_until_held(first) >= 1
    _candles_until_held(second)  # may send none: the first used the shared budget up
    assert 5 <= _peak_weight(tight) <= int(0.8 * LIMIT)
    assert 429 not in _statuses(tight)


def test_a_429_seen_by_one_instance_holds_the_others_until_retry_after(
    tight: SimExchange, tmp_path: Path
) -> None:
    path = tmp_path / "ratelimit.json"
    # The first instance believes in a bigger limit than the exchange applies.
    first = adapter(tight, governor=dataclasses.replace(
        _settings(SharedBudgetFile(path)), limits=BudgetLimits(weight_per_window=10 * LIMIT)
    ))  # fmt: skip
    second = adapter(tight, governor=_settings(SharedBudgetFile(path)))
    with pytest.raises(RateLimitedError) as limited:
        for _ in range(LIMIT):
            first.fetch_candles(SYMBOL, timeframe="1h", since_ms=None, limit=KLINES["limit"])
    assert not isinstance(limited.value, RequestHeldError)  # the exchange's own 429
    seen = len(tight.requests)
    with pytest.raises(RequestHeldError) as held:
        second.fetch_balance()  # another instance: held back by the shared pause
    assert tight.requests[seen:] == []  # held: nothing went out
    assert held.value.retry_after_s is not None and held.value.retry_after_s >= 1
    # Retry-After honoured: at most one 429 a minute. (A 429 just before the minute ends
    # lets the first, which believes in a larger limit, earn another in the next minute.)
    minutes = [r.at_ms // 60_000 for r in tight.requests if r.status == 429]
    assert len(minutes) == len(set(minutes)) >= 1
    assert 418 not in _statuses(tight)


def test_protective_orders_use_the_reserve_entries_may_not(tight: SimExchange) -> None:
    tight.account.set_position(SYMBOL, Decimal("0.02"), PRICE)
    ex = adapter(tight, governor=_settings(LocalBudget(), orders_per_10s=10))
    ex.measure_clock()
    ex.load_markets([SYMBOL])
    entries = 0
    with pytest.raises(RequestHeldError):
        for i in range(20):  # 80% of 10 orders per 10 s go (more if the 10 s roll over)
            ex.create_order(market(f"e{i}"))
            entries += 1
    ex.create_order(stop("s1"))  # a reduce-only stop still goes
    algo = requests_to(tight, "POST", "/fapi/v1/algoOrder")
    assert [r.params.get("clientAlgoId") for r in algo] == ["s1"]
    posted = [
        r.params.get("newClientOrderId") for r in requests_to(tight, "POST", "/fapi/v1/order")
    ]
    assert len(posted) == entries >= 8


def test_an_instance_starting_during_a_ban_sends_nothing_until_it_ends(tmp_path: Path) -> None:
    # The account-mode step weighs 60 (two weight-30 reads): the SYNC share must hold it.
    # The ban outlasts any pause the 429 set (at most one window), as Binance's bans
    # (minutes to days) do: a shorter one left the sync facing a pause nobody here saw.
    window_ms, ban_ms, limit = 4000, 4500, 100
    sim = SimExchange(SimConfig(
        symbols=(SYMBOL,), weight_limit_per_minute=limit, weight_window_ms=window_ms,
        ban_ms=ban_ms, ban_grace_ms=0,
    )).start()  # fmt: skip
    try:
        path = tmp_path / "ratelimit.json"
        settings = GovernorSettings(
            limits=BudgetLimits(weight_per_window=limit, window_ms=window_ms),
            store=SharedBudgetFile(path), max_wait_s=0,
        )  # fmt: skip
        blind = client(sim)  # someone on this IP without a governor earns a ban
        with pytest.raises(ccxt.DDoSProtection, match="429"):
            for _ in range(limit):
                blind.fetch_ohlcv(SYMBOL, "1h", limit=KLINES["limit"])
        with pytest.raises(ccxt.DDoSProtection, match="418"):
            blind.fetch_time()
        running = adapter(sim, governor=settings)
        with pytest.raises(RateLimitedError):
            running.fetch_balance()  # learns of the ban: every instance holds off now
        banned_at = sim.requests[-1].at_ms
        seen = len(sim.requests)
        starting = adapter(sim, governor=settings)
        progress = RecordedProgress()
        snapshot = sync_account(
            exchange=starting, symbols=[SYMBOL], progress=progress, clock=SystemClock(),
            deadline_ms=SystemClock().now_ms() + 30_000, max_clock_offset_ms=500,
        )  # fmt: skip
        assert snapshot.balance.total > 0
        after = sim.requests[seen:]
        assert after, "the startup sync sent nothing at all"
        assert after[0].at_ms >= banned_at + ban_ms - 1000  # nothing before the ban ended
        assert [r.status for r in after] == [200] * len(after)
        assert progress.waits  # the startup retried, it did not fail
    finally:
        sim.stop()


def test_a_budget_wait_never_falls_inside_a_clock_sample(tight: SimExchange) -> None:
    window_ms = 3000
    store = LocalBudget()
    settings = GovernorSettings(
        limits=BudgetLimits(weight_per_window=100, window_ms=window_ms), store=store,
        max_wait_s=5,
    )  # fmt: skip
    ex = adapter(tight, governor=settings, clock_samples=1)
    clock = SystemClock()
    # Fill the window early in it, so the sample must wait at least 2.5 s for the next.
    assert wait_until(lambda: clock.now_ms() % window_ms < 500, timeout=30)
    now = clock.now_ms()
    full = BudgetState(window=now // window_ms, weight=99)
    store.update(lambda s: (None, full))
    offset = ex.measure_clock()
    assert clock.now_ms() - now >= 2000  # it did wait for the next window...
    assert offset.uncertainty_ms < 1000  # ...before the round trip, not inside it
