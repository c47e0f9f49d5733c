"""The executor's reads wait as long as a rate limit (or the weight budget) says."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from orders_fakes import SYMBOL, FakeExchange

from trendbotd.core.clock import ManualClock
from trendbotd.errors import RateLimitedError, RequestHeldError
from trendbotd.journal.store import Journal, open_journal
from trendbotd.trading.executor import ExecutorPolicy, OrderExecutor

T0 = 1_700_000_000_000
POLICY = ExecutorPolicy(
    query_attempts=3, query_backoff_s=1.0, max_backoff_s=8.0, absent_settle_ms=6000,
    max_sends=3, entry_resend_window_ms=60_000, fill_polls=3, max_rate_limit_wait_s=30.0,
)  # fmt: skip


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = open_journal(tmp_path / "bot.db")
    yield j
    j.close()


@pytest.mark.parametrize(
    ("error", "waits"),
    [
        (RequestHeldError("held back", retry_after_s=9.7), [9.7, 9.7]),
        (RateLimitedError("429", retry_after_s=0.2), [1.0, 2.0]),  # never below the backoff
        (RateLimitedError("418", retry_after_s=600), [30.0, 30.0]),  # capped
    ],
)
def test_read_retry_waits_out_retry_after(
    journal: Journal, error: RateLimitedError, waits: list[float]
) -> None:
    fake = FakeExchange()
    fake.fault("fetch_positions", error, times=2)
    clock = ManualClock(T0)
    paused: list[float] = []
    executor = OrderExecutor(exchange=fake, journal=journal, clock=clock, instance="bot",
                             policy=POLICY, waiting=paused.append)  # fmt: skip
    assert executor.read_with_retry("positions", lambda: fake.fetch_positions([SYMBOL])) == []
    assert paused == waits
