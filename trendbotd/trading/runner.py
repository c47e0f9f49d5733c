"""The trading runner: drives the parts the composition root (trading/compose/) built,
through the Runner protocol of service/lifecycle.py: start (the assembly's sync, then the
operator's pending requests) -> READY text, tick, reload, stop.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import TYPE_CHECKING

from trendbotd.alerts.sink import AlertSink, NullAlertSink
from trendbotd.config import Config
from trendbotd.core import telemetry
from trendbotd.core.domain import Market
from trendbotd.core.ports import Notifier, StartupProgress
from trendbotd.core.records import TradingMode
from trendbotd.errors import (
    CredentialsError,
    ExchangeAuthError,
    ExchangeError,
    JournalError,
    OperationalError,
    RateLimitedError,
    TrendbotError,
)
from trendbotd.journal.operator_requests import finish_flatten, pending_flatten
from trendbotd.journal.store import Journal
from trendbotd.trading.clock_watch import ClockWatch
from trendbotd.trading.events import TradingEvents
from trendbotd.trading.parts import Assembly, TradingParts

if TYPE_CHECKING:
    from trendbotd.trading.engine import Engine

logger = logging.getLogger(__name__)

RETRY_PENDING_S = 5.0  # a symbol whose closed candle is not decided yet is retried this often


class TradingRunner:
    def __init__(
        self,
        config: Config,
        *,
        assembly: Assembly,
        notifier: Notifier,
        alerts: AlertSink | None = None,
    ) -> None:
        """``assembly``: builds and syncs the parts at start(), closes them at stop().
        ``alerts``: where trading events go (the assembly gives the order stack and the
        engine the same sink)."""
        self._config = config
        self._assembly = assembly
        self._notifier = notifier
        self._alerts: AlertSink = alerts if alerts is not None else NullAlertSink()
        self._events = TradingEvents(
            self._alerts, unreachable_alert_s=config.alerts.unreachable_alert_s
        )
        self._parts: TradingParts | None = None
        self._clock_watch: ClockWatch | None = None
        self._halt_seen = -1  # mode_since_ms of the halt last logged
        self._last_tick_at = time.monotonic()  # reset when start() has synced
        self._not_before = 0.0  # monotonic: no tick before this (the exchange said wait)

    # ----- Runner protocol -----

    def start(self, progress: StartupProgress) -> str:
        try:
            return self._start(progress)
        except (ExchangeAuthError, CredentialsError, JournalError) as e:
            self._events.fatal(e)
            raise

    def _start(self, progress: StartupProgress) -> str:
        self._parts = parts = self._assembly.start(progress)
        self._clock_watch = ClockWatch(
            exchange=parts.exchange, journal=parts.journal, clock=parts.clock,
            alerts=self._alerts, recorded=parts.recorded_clock,
        )  # fmt: skip
        self._events.mode_known(parts.mode_before_sync)
        self._operator_requests_or_later()  # a flatten journalled while down, or cut short
        self._events.check_mode(parts.journal)
        mode = parts.journal.controls.mode()
        if mode.mode.value != "normal":
            logger.error("mode.%s reason=%s", mode.mode.value, mode.reason)
        snapshot = parts.snapshot
        held = sum(1 for p in snapshot.positions if not p.is_flat)
        telemetry.equity(snapshot.balance.total)
        self._last_tick_at = time.monotonic()  # READY follows a full sync: re-sync from here
        parts.end_startup()
        return (
            f"ready: {mode.mode.value}, equity {snapshot.balance.total} "
            f"{snapshot.balance.currency}, {held} open position(s)"
        )

    def seconds_until_next_tick(self) -> float:
        """Real seconds until the next tick: a closed candle to decide, or the periodic
        re-sync (``tick_interval_s`` after the last tick) that verifies positions and stops
        between candles, whichever comes first."""
        parts = self._require_parts()
        now = time.monotonic()
        return max(self._not_before - now, self._seconds_until_due(parts, now))

    def _seconds_until_due(self, parts: TradingParts, now: float) -> float:
        since_last = now - self._last_tick_at
        resync_s = max(0.0, self._config.service.tick_interval_s - since_last)
        if parts.engine.has_pending:
            return min(resync_s, max(0.0, RETRY_PENDING_S - since_last))
        decision_s = max(0.0, parts.engine.ms_until_next_decision() / 1000 / parts.speed)
        return min(decision_s, resync_s)

    def operator_requests(self) -> str | None:
        """Act on what ``trendbotd halt`` / ``flatten`` journalled: say that a new halt
        holds (the entries already see it) and execute a pending flatten. Returns what was
        done, or None. Exchange trouble propagates: the request stays pending and the next
        tick (or wake) runs it again."""
        parts = self._require_parts()
        journal = parts.journal
        mode = journal.controls.mode()
        done: str | None = None
        if mode.mode is TradingMode.HALTED and mode.since_ms != self._halt_seen:
            self._halt_seen = mode.since_ms
            logger.warning(
                "operator.halted reason=%s: no new entries; stops and exits still managed",
                mode.reason,
            )
            done = f"halted ({mode.reason})"
        request = pending_flatten(journal)
        if request is None:
            return done
        symbols = [s for s in request.resolve(self._config.trading.symbols)
                   if s in self._config.trading.symbols]  # fmt: skip
        logger.warning("operator.flatten id=%s symbols=%s reason=%s", request.id,
                       ",".join(symbols), request.reason)  # fmt: skip
        report = parts.positions.flatten(symbols, reason=request.reason)
        outcome = (
            f"flat: {sum(1 for c in report.closed if c.flat)} position(s) closed, "
            f"{len(report.canceled)} entry order(s) canceled; halted"
        )
        finish_flatten(journal, request, outcome, now_ms=parts.clock.now_ms())
        logger.warning("operator.flatten_done id=%s %s", request.id, outcome)
        return outcome

    def _operator_requests_or_later(self) -> None:
        """A flatten that fails (exchange trouble, a close not confirmed) stays pending and
        is tried again at the next tick; it never stops the daemon from managing stops."""
        try:
            self.operator_requests()
        except OperationalError:
            raise
        except TrendbotError as e:
            logger.warning("operator.flatten_failed retrying=next tick error=%s", e)

    def tick(self) -> str:
        parts = self._require_parts()
        watch = self._clock_watch
        assert watch is not None
        self._last_tick_at = time.monotonic()
        self._operator_requests_or_later()  # in case a wake was missed (no PID, no permission)
        watch.recheck(remeasure=watch.gate.refused is not None)
        try:
            status = parts.engine.tick()
        except (ExchangeAuthError, JournalError) as e:
            self._events.fatal(e)
            raise
        except OperationalError:
            raise
        except ExchangeError as e:
            self._events.exchange_failed(e)
            self._events.check_mode(parts.journal)
            # Transient trouble: the next wake retries; stops on the exchange keep protecting.
            # Rate limited: not before the pause is over, or each wake fails at once again.
            if isinstance(e, RateLimitedError) and e.retry_after_s:
                self._not_before = time.monotonic() + e.retry_after_s / parts.speed
            logger.warning("tick.exchange_error error=%s", e)
            watch.recheck(remeasure=False)
            return watch.gate.status(f"exchange error, retrying: {e}")
        self._events.exchange_back()
        self._events.check_mode(parts.journal)
        parts.exchange.keep_clock_fresh()  # after the orders, never in front of one
        watch.record()
        watch.recheck(remeasure=False)
        return watch.gate.status(status)

    def reload(self, config: Config) -> None:
        old = self._config
        if (config.exchange, config.trading, config.instance, config.paper) != (
            old.exchange,
            old.trading,
            old.instance,
            old.paper,
        ):
            logger.warning(
                "reload.partial exchange, trading, instance and paper settings need a restart; "
                "applying strategy, risk and service settings only"
            )
        merged = dataclasses.replace(
            config,
            instance=old.instance,
            exchange=old.exchange,
            paper=old.paper,
            trading=old.trading,
        )
        self._config = merged
        if self._parts is not None:
            self._parts.engine.config = merged

    def stop(self) -> None:
        try:
            if self._parts is not None:
                engine = self._parts.engine
                logger.info("shutdown.done %s", engine.shutdown(self._config.risk.shutdown_policy))
        finally:
            self._assembly.close()

    # ----- read-only views (status, tests) -----

    @property
    def journal(self) -> Journal | None:
        """The instance's journal once start() has synced."""
        return None if self._parts is None else self._parts.journal

    def market(self, symbol: str) -> Market:
        """The exchange's rules for ``symbol`` as loaded at start-up."""
        return self._require_engine().market(symbol)

    def _require_engine(self) -> Engine:
        return self._require_parts().engine

    def _require_parts(self) -> TradingParts:
        if self._parts is None:
            raise RuntimeError("runner used before start() succeeded")
        return self._parts
