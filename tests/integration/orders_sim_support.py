"""Test helper: the order stack wired to the real ccxt adapter and a simulated exchange.

Used by tests/integration/test_orders_*.py and by the crash child process.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

from support.startup_steps import RecordedProgress

from trendbotd.adapters.ccxt_exchange import CcxtExchange
from trendbotd.adapters.clock import SystemClock
from trendbotd.core.domain import AccountSnapshot, OrderType, Side
from trendbotd.core.records import IntentSpec, Purpose
from trendbotd.core.retry import RetryPolicy
from trendbotd.journal.store import Journal
from trendbotd.sim import SimExchange
from trendbotd.trading.crashpoints import CrashHook
from trendbotd.trading.executor import ExecutorPolicy, OrderExecutor
from trendbotd.trading.positions import PositionManager
from trendbotd.trading.startup import sync_account

SYMBOL = "BTC/USDT:USDT"
PRICE = Decimal(50000)
CANDLE = 1_700_000_000_000
RECV_WINDOW_MS = 500  # the sim shares our clock; a short window keeps "absent" waits short
POLICY = ExecutorPolicy(
    query_attempts=4,
    query_backoff_s=0.05,
    max_backoff_s=1.2,  # >= the adapter's 1 s hold after a 429 without Retry-After
    absent_settle_ms=RECV_WINDOW_MS + 100,
    max_sends=3,
    entry_resend_window_ms=60_000,
    fill_polls=5,
    max_rate_limit_wait_s=5.0,
)
ORDER_PATHS = ("/fapi/v1/order", "/fapi/v1/algoOrder")


def adapter(base_url: str, api_key: str, api_secret: str) -> CcxtExchange:
    return CcxtExchange(
        exchange_id="binanceusdm",
        api_key=api_key,
        api_secret=api_secret,
        base_url=base_url,
        demo=False,
        recv_window_ms=RECV_WINDOW_MS,
        timeout_s=1.0,
        clock=SystemClock(),
        rate_limit=False,
        read_retry=RetryPolicy(attempts=2, deadline_s=1.0, first_delay_s=0.05, max_delay_s=0.1),
    )


@contextmanager
def measured_adapter(sim: SimExchange) -> Iterator[CcxtExchange]:
    """The adapter on ``sim`` with the clock offset measured; closed at the end."""
    exchange = adapter(sim.base_url, sim.api_key, sim.api_secret)
    exchange.measure_clock()
    try:
        yield exchange
    finally:
        exchange.close()


def snapshot(exchange: CcxtExchange) -> AccountSnapshot:
    clock = SystemClock()
    return sync_account(
        exchange=exchange,
        symbols=[SYMBOL],
        progress=RecordedProgress(),
        clock=clock,
        deadline_ms=clock.now_ms() + 10_000,
        max_clock_offset_ms=500,
    )


def manager(
    exchange: CcxtExchange, journal: Journal, *, crash: CrashHook | None = None
) -> PositionManager:
    executor = OrderExecutor(
        exchange=exchange,
        journal=journal,
        clock=SystemClock(),
        instance="itest",
        policy=POLICY,
        crash=crash,
    )
    return PositionManager(executor=executor, symbols=[SYMBOL], close_rounds=4)


def synced_manager(exchange: CcxtExchange, journal: Journal) -> PositionManager:
    """A manager after its first sync, which found the account consistent."""
    manager_ = manager(exchange, journal)
    assert manager_.sync(snapshot(exchange)).reconciliation.consistent
    return manager_


def long_entry(stop: Decimal = Decimal(49000), *, candle_time_ms: int = CANDLE) -> IntentSpec:
    return IntentSpec(
        symbol=SYMBOL,
        side=Side.BUY,
        type=OrderType.MARKET,
        amount=Decimal("0.010"),
        purpose=Purpose.ENTRY,
        candle_time_ms=candle_time_ms,
        protective_stop=stop,
    )


def accepted_per_client_id(sim: SimExchange) -> collections.Counter[str]:
    """Orders the exchange accepted (executed), per client id, from its request log."""
    counts: collections.Counter[str] = collections.Counter()
    for r in sim.requests:
        if r.method == "POST" and r.path in ORDER_PATHS and r.accepted:
            cid = r.params.get("newClientOrderId") or r.params.get("clientAlgoId") or "?"
            counts[cid] += 1
    return counts


def duplicates(sim: SimExchange) -> dict[str, int]:
    return {cid: n for cid, n in accepted_per_client_id(sim).items() if n > 1}


def unprotected(sim: SimExchange) -> list[str]:
    """Symbols whose open position is not fully covered by reduce-only stops."""
    gaps = []
    for p in sim.account.positions():
        closing = Side.SELL if p.amount > 0 else Side.BUY
        covered = sum(
            (
                o.amount
                for o in sim.account.open_orders(p.symbol)
                if o.conditional and o.reduce_only and o.side is closing
            ),
            Decimal(0),
        )
        if covered < abs(p.amount):
            gaps.append(f"{p.symbol} {p.amount} covered {covered}")
    return gaps


def journal_path(directory: Path) -> Path:
    return directory / "itest.db"
