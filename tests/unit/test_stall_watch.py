"""``watchdog.stall``: the pure decision as a table, and the watcher's one alert per stall
driven by a hand-moved clock (no thread, no sleep)."""

from __future__ import annotations

import pytest
from support.alert_sink import RecordingSink

from trendbotd.alerts.events import CATALOGUE, Severity
from trendbotd.service.stall_watch import (
    MIN_UNWATCHED_STALL_S,
    Stall,
    StallWatcher,
    check_stall,
    stall_threshold_s,
)


@pytest.mark.parametrize(
    ("last", "now", "alerted", "verdict"),
    [
        (100.0, 100.0, False, Stall.PROGRESSING),
        (100.0, 110.0, False, Stall.PROGRESSING),  # exactly the threshold: not yet
        (100.0, 110.1, False, Stall.NEW),
        (100.0, 110.1, True, Stall.ONGOING),
        (100.0, 500.0, True, Stall.ONGOING),
        (200.0, 205.0, True, Stall.PROGRESSING),  # progress again: the stall is over
    ],
)
def test_check_stall(last: float, now: float, alerted: bool, verdict: Stall) -> None:
    assert check_stall(last_progress=last, now=now, threshold_s=10.0, alerted=alerted) is verdict


@pytest.mark.parametrize(
    ("watchdog_half_s", "tick_interval_s", "threshold"),
    [
        (1.5, 60.0, 1.5),  # systemd's watchdog decides: half of WatchdogSec
        (90.0, 0.2, 90.0),
        (None, 60.0, 180.0),  # no watchdog: three ticks
        (None, 0.2, MIN_UNWATCHED_STALL_S),  # ... but not less than the floor
    ],
)
def test_stall_threshold(
    watchdog_half_s: float | None, tick_interval_s: float, threshold: float
) -> None:
    assert (
        stall_threshold_s(watchdog_half_s=watchdog_half_s, tick_interval_s=tick_interval_s)
        == threshold
    )


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_one_alert_per_stall() -> None:
    assert CATALOGUE["watchdog.stall"].severity is Severity.ERROR
    sink, clock = RecordingSink(), _Clock()
    watcher = StallWatcher(sink, threshold_s=2.0, clock=clock)
    clock.now += 1.9
    assert watcher.check() is Stall.PROGRESSING
    clock.now += 0.2
    assert watcher.check() is Stall.NEW
    clock.now += 30
    assert watcher.check() is Stall.ONGOING
    assert sink.events == [("watchdog.stall", {"stalled_s": 2.1, "threshold_s": 2.0})]
    watcher.beat()  # the loop moves again
    assert watcher.check() is Stall.PROGRESSING
    clock.now += 5  # a second stall: a second alert
    assert watcher.check() is Stall.NEW
    assert [e for e, _ in sink.events] == ["watchdog.stall", "watchdog.stall"]


def test_the_thread_stops() -> None:
    watcher = StallWatcher(RecordingSink(), threshold_s=0.01)
    watcher.start()
    watcher.stop()
