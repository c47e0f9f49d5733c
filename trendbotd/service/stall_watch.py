"""``watchdog.stall``: tell the operator when the loop stops making progress.

A stalled loop cannot report its own stall, so a small daemon thread of its own watches a
progress stamp the loop renews whenever it is alive (after a tick, after each sleep slice).
When the stamp is older than the threshold, one alert per stall; the next renewal ends the
stall (logged, no alert: the catalogue has no "stall over" event).

The threshold: half of WatchdogSec when systemd arms the watchdog (the alert goes out
while systemd would still wait as long again before killing the process), else three tick
intervals, but at least ``MIN_UNWATCHED_STALL_S`` (a busy machine can hold a short tick
back for seconds; without a watchdog nothing kills the daemon, so nothing is urgent).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from enum import Enum

from trendbotd.alerts.sink import AlertSink

logger = logging.getLogger(__name__)

MIN_UNWATCHED_STALL_S = 60.0
_CHECKS_PER_THRESHOLD = 4  # the alert comes at most a quarter of the threshold late


class Stall(Enum):
    PROGRESSING = "progressing"
    NEW = "new"  # stalled, not reported yet: alert now
    ONGOING = "ongoing"  # stalled, already reported


def stall_threshold_s(*, watchdog_half_s: float | None, tick_interval_s: float) -> float:
    """``watchdog_half_s``: half of WATCHDOG_USEC in seconds (None: no watchdog armed)."""
    if watchdog_half_s is not None:
        return watchdog_half_s
    return max(3 * tick_interval_s, MIN_UNWATCHED_STALL_S)


def check_stall(*, last_progress: float, now: float, threshold_s: float, alerted: bool) -> Stall:
    """Pure: whether the loop is stalled at ``now`` and whether that still needs an alert."""
    if now - last_progress <= threshold_s:
        return Stall.PROGRESSING
    return Stall.ONGOING if alerted else Stall.NEW


class StallWatcher:
    """The progress stamp (``beat``, called by the loop) and the thread that checks it."""

    def __init__(
        self,
        sink: AlertSink,
        *,
        threshold_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sink = sink
        self._threshold_s = threshold_s
        self._clock = clock
        self._last = clock()  # a float assignment: atomic, no lock needed
        self._alerted = False
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        self._last = self._clock()

    def check(self) -> Stall:
        """One look at the stamp; emits the alert of a new stall."""
        last = self._last
        now = self._clock()
        verdict = check_stall(
            last_progress=last, now=now, threshold_s=self._threshold_s, alerted=self._alerted
        )
        if verdict is Stall.NEW:
            self._sink.emit(
                "watchdog.stall",
                stalled_s=round(now - last, 1),
                threshold_s=round(self._threshold_s, 1),
            )
        elif verdict is Stall.PROGRESSING and self._alerted:
            logger.info("watchdog.stall_over")
        self._alerted = verdict is not Stall.PROGRESSING
        return verdict

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="stall-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        period = self._threshold_s / _CHECKS_PER_THRESHOLD
        while not self._stopped.wait(period):
            try:
                self.check()
            except Exception:  # the watcher must outlive a bad check: it is the last witness
                logger.exception("watchdog.stall_check_crashed")


def start_stall_watch(
    sink: AlertSink, *, watchdog_half_s: float | None, tick_interval_s: float
) -> StallWatcher:
    """The running watcher for the loop; ``stop()`` it when the loop ends."""
    threshold = stall_threshold_s(watchdog_half_s=watchdog_half_s, tick_interval_s=tick_interval_s)
    logger.info("watchdog.stall_watch threshold_s=%.1f", threshold)
    watcher = StallWatcher(sink, threshold_s=threshold)
    watcher.start()
    return watcher
