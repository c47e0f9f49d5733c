"""The weight budget's decisions (pure) and the file that shares it between instances."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import signal
from pathlib import Path

import pytest

from trendbotd.adapters.budget_file import LocalBudget, SharedBudgetFile
from trendbotd.adapters.governor import WeightGovernor, header_int
from trendbotd.adapters.weight_budget import (
    BudgetLimits,
    BudgetState,
    Priority,
    admit,
    observe,
    refused,
)
from trendbotd.core.clock import ManualClock
from trendbotd.errors import RequestHeldError

LIMITS = BudgetLimits(weight_per_window=100, orders_per_10s=10, orders_per_window=50,
                      share=0.8, urgent_share=0.96)  # fmt: skip
T0 = 60_000 * 1000  # the start of a window


def _fill(weight: int, *, now_ms: int = T0) -> BudgetState:
    return admit(BudgetState(), priority=Priority.PROTECT, weight=weight, orders=0,
                 now_ms=now_ms, limits=LIMITS).state  # fmt: skip


def test_ceilings_rise_with_urgency_from_share_to_urgent_share() -> None:
    ceilings = [LIMITS.ceiling(p) for p in Priority]
    assert ceilings[Priority.PROTECT] == pytest.approx(0.96)
    assert ceilings[Priority.CANDLES] == pytest.approx(0.8)
    assert ceilings == sorted(ceilings, reverse=True)
    assert len(set(ceilings)) == len(ceilings)


@pytest.mark.parametrize(
    ("priority", "goes"),
    [
        (Priority.PROTECT, True),  # 85 + 5 = 90 <= 96
        (Priority.CANCEL, True),  # <= 92
        (Priority.SYNC, False),  # > 88
        (Priority.ENTRY, False),
        (Priority.CANDLES, False),
    ],
)
def test_above_the_share_only_urgent_requests_go(priority: Priority, goes: bool) -> None:
    state = _fill(85)
    verdict = admit(state, priority=priority, weight=5, orders=0, now_ms=T0 + 15_000,
                    limits=LIMITS)  # fmt: skip
    assert (verdict.wait_ms == 0) is goes
    if not goes:
        assert (verdict.wait_ms, verdict.reason) == (45_000, "weight")  # the window's end
        assert verdict.state.weight == 85  # not counted
    else:
        assert verdict.state.weight == 90


def test_below_the_share_everything_goes_and_a_new_window_starts_at_zero() -> None:
    state = _fill(75)
    assert admit(state, priority=Priority.CANDLES, weight=5, orders=0, now_ms=T0,
                 limits=LIMITS).wait_ms == 0  # fmt: skip
    full = _fill(95)
    nxt = admit(full, priority=Priority.CANDLES, weight=5, orders=0, now_ms=T0 + 60_000,
                limits=LIMITS)  # fmt: skip
    assert (nxt.wait_ms, nxt.state.weight) == (0, 5)


def test_order_counts_keep_entries_back_but_not_stops() -> None:
    state = BudgetState()
    for _ in range(8):  # 80% of 10 per 10 s
        state = admit(state, priority=Priority.ENTRY, weight=0, orders=1, now_ms=T0,
                      limits=LIMITS).state  # fmt: skip
    entry = admit(state, priority=Priority.ENTRY, weight=0, orders=1, now_ms=T0 + 4_000,
                  limits=LIMITS)  # fmt: skip
    assert (entry.wait_ms, entry.reason) == (6_000, "orders")
    stop = admit(state, priority=Priority.PROTECT, weight=0, orders=1, now_ms=T0 + 4_000,
                 limits=LIMITS)  # fmt: skip
    assert stop.wait_ms == 0


def test_a_429_holds_everything_even_stops_and_a_418_longer() -> None:
    state = refused(BudgetState(), status=429, retry_after_s=7, now_ms=T0, limits=LIMITS)
    stop = admit(state, priority=Priority.PROTECT, weight=1, orders=1, now_ms=T0 + 2_000,
                 limits=LIMITS)  # fmt: skip
    assert (stop.wait_ms, stop.reason) == (5_000, "backoff")
    banned = refused(state, status=418, retry_after_s=None, now_ms=T0, limits=LIMITS)
    assert admit(banned, priority=Priority.PROTECT, weight=1, orders=0, now_ms=T0,
                 limits=LIMITS).wait_ms == 120_000  # fmt: skip
    no_header = refused(BudgetState(), status=429, retry_after_s=None, now_ms=T0 + 50_000,
                        limits=LIMITS)  # fmt: skip
    assert no_header.hold_until_ms == T0 + 60_000  # until the window rolls over


def test_observe_trusts_the_exchange_count_of_the_same_window_only() -> None:
    state = _fill(10)
    seen = observe(state, used_weight=70, orders_10s=3, orders_1m=4, sent_ms=T0 + 1_000,
                   now_ms=T0 + 1_100, limits=LIMITS)  # fmt: skip
    assert (seen.weight, seen.orders_10s, seen.orders) == (70, 3, 4)
    lower = observe(seen, used_weight=20, orders_10s=None, orders_1m=None, sent_ms=T0 + 2_000,
                    now_ms=T0 + 2_000, limits=LIMITS)  # fmt: skip
    assert lower.weight == 70  # our own admissions not yet counted there
    crossed = observe(seen, used_weight=90, orders_10s=None, orders_1m=None,
                      sent_ms=T0 + 59_900, now_ms=T0 + 60_050, limits=LIMITS)  # fmt: skip
    assert crossed.weight == 0  # the old minute's total is not carried into the new one


def test_header_int_reads_any_case_and_ignores_garbage() -> None:
    assert header_int({"X-MBX-USED-WEIGHT-1M": "17"}, "x-mbx-used-weight-1m") == 17
    assert header_int({"x-mbx-used-weight-1m": "n/a"}, "x-mbx-used-weight-1m") is None
    assert header_int(None, "x-mbx-used-weight-1m") is None


# ----- the shared file -----


def _count(path: Path, n: int) -> None:
    store = SharedBudgetFile(path)
    for _ in range(n):
        store.update(lambda s: (None, dataclasses.replace(s, weight=s.weight + 1)))


def test_shared_file_counts_every_process_exactly(tmp_path: Path) -> None:
    path = tmp_path / "budget.json"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_count, args=(path, 200)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert json.loads(path.read_text())["weight"] == 800


def _hold_lock_and_die(path: Path, ready: str) -> None:
    def stuck(state: BudgetState) -> tuple[None, BudgetState]:
        Path(ready).touch()
        os.kill(os.getpid(), signal.SIGKILL)  # dies while holding the flock
        return None, state

    SharedBudgetFile(path).update(stuck)


def test_a_crashed_instance_leaves_nothing_locked(tmp_path: Path) -> None:
    path = tmp_path / "budget.json"
    ready = tmp_path / "ready"
    proc = multiprocessing.get_context("fork").Process(
        target=_hold_lock_and_die, args=(path, str(ready))
    )
    proc.start()
    proc.join(timeout=30)
    assert ready.exists() and proc.exitcode == -signal.SIGKILL
    _count(path, 1)  # would block forever if the lock had survived its holder
    assert json.loads(path.read_text())["weight"] == 1


@pytest.mark.parametrize("garbage", [b"{not json", b'{"version": 99}', b'{"version": 1}', b"\xff"])
def test_a_corrupt_file_is_logged_and_rebuilt(
    tmp_path: Path, garbage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "budget.json"
    path.write_bytes(garbage)
    _count(path, 1)
    assert json.loads(path.read_text())["weight"] == 1
    assert "ratelimit.shared_state_corrupt" in caplog.text


def test_an_unusable_file_falls_back_to_counting_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SharedBudgetFile(tmp_path / "missing-dir" / "budget.json")
    assert store.update(lambda s: (s.weight + 1, s)) == 1
    assert "ratelimit.shared_state_unusable" in caplog.text


# ----- the governor: waits on the clock, holds back what would wait too long -----


def test_governor_waits_for_the_next_window_then_holds_back_long_waits() -> None:
    clock = ManualClock(T0 + 58_000)
    gov = WeightGovernor(store=LocalBudget(), limits=LIMITS, clock=clock, max_wait_s=5)
    gov.acquire(Priority.SYNC, weight=80, orders=0)
    gov.acquire(Priority.CANDLES, weight=5, orders=0)  # waits 2 s for the next minute
    assert clock.now_ms() == T0 + 60_000
    gov.acquire(Priority.SYNC, weight=80, orders=0)
    with pytest.raises(RequestHeldError) as held:
        gov.acquire(Priority.CANDLES, weight=5, orders=0)  # 60 s away: not in-line
    assert held.value.retry_after_s == 60
    gov.acquire(Priority.PROTECT, weight=5, orders=1)  # the reserve is the stop's
    assert clock.now_ms() == T0 + 60_000


def test_governor_obeys_retry_after_and_bans_for_every_priority(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock(T0)
    gov = WeightGovernor(store=LocalBudget(), limits=LIMITS, clock=clock, max_wait_s=5)
    sent = gov.acquire(Priority.SYNC, weight=1, orders=0)
    gov.observe(status=429, headers={"Retry-After": "3"}, retry_after_s=3, sent_ms=sent)
    gov.acquire(Priority.PROTECT, weight=1, orders=1)
    assert clock.now_ms() == T0 + 3_000
    gov.observe(status=418, headers={}, retry_after_s=600, sent_ms=clock.now_ms())
    assert any(r.levelname == "CRITICAL" and "ip_banned" in r.message for r in caplog.records)
    with pytest.raises(RequestHeldError) as held:
        gov.acquire(Priority.PROTECT, weight=1, orders=1)
    assert held.value.retry_after_s == 600
