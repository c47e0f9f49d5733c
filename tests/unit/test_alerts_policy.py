"""Pure alert policy: severity filter, coalescing, rate limit, back-off, message text."""

from __future__ import annotations

import pytest

from trendbotd.alerts.events import CATALOGUE, Severity, spec_for
from trendbotd.alerts.policy import (
    PendingAlert,
    RateLimit,
    accepts,
    backoff_s,
    coalesce,
    render,
)


def _alert(seq: int, key: str, at_ms: int, event: str = "exchange.unreachable") -> PendingAlert:
    return PendingAlert(
        seq=seq,
        alert_id=f"id{seq}",
        event=event,
        severity=Severity.ERROR,
        created_ms=at_ms,
        text=f"{event} {seq}",
        key=key,
    )


@pytest.mark.parametrize(
    ("minimum", "severity", "expected"),
    [
        (Severity.INFO, Severity.INFO, True),
        (Severity.WARNING, Severity.INFO, False),
        (Severity.WARNING, Severity.CRITICAL, True),
        (Severity.CRITICAL, Severity.ERROR, False),
        (Severity.CRITICAL, Severity.CRITICAL, True),
    ],
)
def test_accepts_by_minimum_severity(minimum: Severity, severity: Severity, expected: bool) -> None:
    assert accepts(minimum, severity) is expected


def test_repeats_within_the_window_coalesce_and_keep_first_order() -> None:
    pending = [
        _alert(1, "a", 0),
        _alert(2, "b", 100),
        _alert(3, "a", 200),
        _alert(4, "a", 70_000),  # outside the window of the first "a": a new message
    ]
    batches = coalesce(pending, window_ms=60_000)
    assert [(b.first.seq, b.seqs) for b in batches] == [(1, (1, 3)), (2, (2,)), (4, (4,))]
    assert batches[0].count == 2
    assert render(batches[0]) == "exchange.unreachable 1 (x2 within 0 s)"
    assert render(batches[1]) == "exchange.unreachable 2"


def test_zero_window_never_coalesces_distinct_times() -> None:
    pending = [_alert(1, "a", 0), _alert(2, "a", 1)]
    assert [b.seqs for b in coalesce(pending, window_ms=0)] == [(1,), (2,)]


def test_coalesce_of_nothing_is_nothing() -> None:
    assert coalesce([], window_ms=1000) == []


def test_rate_limit_sliding_window() -> None:
    limit = RateLimit(max_messages=2, window_ms=1000)
    assert limit.next_send_ms([], 5000) == 5000
    assert limit.next_send_ms([4500], 5000) == 5000
    assert limit.next_send_ms([4200, 4500], 5000) == 5200
    assert limit.next_send_ms([3000, 3500], 5000) == 5000  # both outside the window
    assert limit.prune([3000, 4500], 5000) == [4500]


def test_backoff_doubles_up_to_the_cap() -> None:
    delays = [backoff_s(n, base_s=2.0, max_s=30.0) for n in range(7)]
    assert delays == [0.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert backoff_s(10_000, base_s=2.0, max_s=300.0) == 300.0


def test_catalogue_names_are_stable_and_critical_ones_are_critical() -> None:
    for name in ("stop.failed", "position.unprotected", "daemon.restarted_unclean", "unit.failed"):
        assert spec_for(name).severity is Severity.CRITICAL
    assert spec_for("daemon.stopped").severity is Severity.INFO
    assert all(spec.name == name for name, spec in CATALOGUE.items())
    with pytest.raises(KeyError):
        spec_for("no.such.event")
    assert Severity.parse("Warning") is Severity.WARNING
    with pytest.raises(ValueError, match="unknown severity"):
        Severity.parse("loud")
