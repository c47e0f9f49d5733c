"""The clock gate around each tick: entries refused while the offset is beyond the bound,
protective orders not; one log line per change, not per tick."""

from __future__ import annotations

import logging

import pytest

from trendbotd.core.clock_gate import ClockGate
from trendbotd.core.domain import ClockOffset
from trendbotd.core.timesync import ClockGuard, ClockVerdict
from trendbotd.errors import ClockNotSyncedError

NOW = 1_700_000_000_000
GUARD = ClockGuard(max_offset_ms=500, max_age_ms=600_000)


def offset(ms: int, *, uncertainty: int = 2, age: int = 0) -> ClockOffset:
    return ClockOffset(
        offset_ms=ms, uncertainty_ms=uncertainty, measured_at_ms=NOW - age, samples=5
    )


def test_an_offset_beyond_the_bound_refuses_entries_but_not_protective_orders() -> None:
    skewed = offset(20_000)
    assert not GUARD.check(skewed, now_ms=NOW).ok
    assert GUARD.check(skewed, now_ms=NOW, protective=True).ok
    with pytest.raises(ClockNotSyncedError, match="clock offset 20000 ms"):
        GUARD.require(skewed, now_ms=NOW)
    assert GUARD.require(skewed, now_ms=NOW, protective=True) == skewed


@pytest.mark.parametrize(
    "bad",
    [None, offset(20_000, uncertainty=900), offset(20_000, age=600_001)],
    ids=["unmeasured", "uncertain", "stale"],
)
def test_protective_orders_still_need_a_stamp_that_is_not_a_guess(bad: ClockOffset | None) -> None:
    assert not GUARD.check(bad, now_ms=NOW, protective=True).ok


def test_gate_logs_each_transition_once(caplog: pytest.LogCaptureFixture) -> None:
    gate = ClockGate()
    refused = ClockVerdict(False, "clock offset 20000 ms exceeds the bound of 500 ms")
    ok = ClockVerdict(True, "")
    with caplog.at_level(logging.INFO, logger="trendbotd.core.clock_gate"):
        assert gate.update(ok, offset_ms=0) is None
        for _ in range(5):
            assert gate.update(refused, offset_ms=20_000) == refused.reason
        for _ in range(3):
            assert gate.update(ok, offset_ms=3) is None
        gate.update(refused, offset_ms=20_000)
    events = [r.getMessage().split(" ")[0] for r in caplog.records]
    assert events == [
        "clock.orders_refused",
        "clock.orders_allowed",
        "clock.orders_refused",
    ]
    assert caplog.records[0].levelno == logging.ERROR


def test_gate_status_leads_with_the_refusal() -> None:
    gate = ClockGate()
    assert gate.status("normal | equity 10") == "normal | equity 10"
    gate.update(
        ClockVerdict(False, "clock offset 900 ms exceeds the bound of 500 ms"), offset_ms=900
    )
    assert gate.status("normal | equity 10") == (
        "orders refused: clock offset 900 ms exceeds the bound of 500 ms | normal | equity 10"
    )
