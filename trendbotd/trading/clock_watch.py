"""The clock gate in the loop: the guard's verdict on the exchange's clock offset after
each tick, the offset journalled whenever it was measured anew, alerts on a change."""

from __future__ import annotations

import logging

from trendbotd.alerts.sink import AlertSink
from trendbotd.core.clock import Clock
from trendbotd.core.clock_gate import ClockGate
from trendbotd.core.domain import ClockOffset
from trendbotd.errors import ExchangeError
from trendbotd.journal.clock_record import record_clock_offset
from trendbotd.journal.store import Journal
from trendbotd.trading.parts import ClockedExchange

logger = logging.getLogger(__name__)


class ClockWatch:
    def __init__(
        self,
        *,
        exchange: ClockedExchange,
        journal: Journal,
        clock: Clock,
        alerts: AlertSink,
        recorded: ClockOffset | None,
    ) -> None:
        self._exchange = exchange
        self._journal = journal
        self._clock = clock
        self._alerts = alerts
        self._recorded = recorded
        self.gate = ClockGate()  # new orders refused while the clock offset is off

    def record(self) -> None:
        """Journal the offset for ``trendbotd status`` whenever it was measured anew."""
        offset = self._exchange.clock_offset
        if offset is None or offset == self._recorded:
            return
        record_clock_offset(self._journal, offset, now_ms=self._clock.now_ms())
        self._recorded = offset

    def recheck(self, *, remeasure: bool) -> None:
        """The clock guard's verdict on the offset as it stands (a -1021 inside the tick
        re-measures it). While orders are refused, each tick measures afresh first, so a
        clock that is right again is believed within one tick."""
        exchange = self._exchange
        if remeasure:
            try:
                exchange.measure_clock()
            except ExchangeError as e:
                logger.warning("clock.remeasure_failed error=%s", e)
            self.record()
        offset = exchange.clock_offset
        verdict = exchange.clock_guard.check(offset, now_ms=self._clock.now_ms())
        offset_ms = None if offset is None else offset.offset_ms
        was = self.gate.refused
        now = self.gate.update(verdict, offset_ms=offset_ms)
        if was is None and now is not None:
            self._alerts.emit("clock.skew_refusing", key="clock", reason=now, offset_ms=offset_ms)
        elif was is not None and now is None:
            self._alerts.emit("clock.skew_cleared", key="clock", offset_ms=offset_ms, was=was)
