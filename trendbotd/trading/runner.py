"""The composition root behind the lock: clock, (simulated) exchange, journal, order
stack and engine, driven by the lifecycle in service/lifecycle.py through the Runner protocol.

Startup order (each step a STATUS= line): journal (a corrupt journal stops us before any
exchange call), paper exchange, credentials, exchange clock/account/balance/positions/
orders, leverage, reconciliation of every unfinished journal entry. READY=1 follows.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from trendbotd.adapters.budget_file import SharedBudgetFile
from trendbotd.adapters.ccxt_exchange import CcxtExchange
from trendbotd.adapters.clock import ScaledClock, SystemClock
from trendbotd.adapters.credentials import load_credentials, register_secret
from trendbotd.adapters.governor import GovernorSettings
from trendbotd.adapters.weight_budget import BudgetLimits
from trendbotd.alerts.sink import AlertSink, NullAlertSink
from trendbotd.alerts.trading import Outage, mode_events
from trendbotd.config import Config
from trendbotd.core import telemetry
from trendbotd.core.clock import Clock
from trendbotd.core.clock_gate import ClockGate
from trendbotd.core.domain import ClockOffset, Market
from trendbotd.core.ports import Notifier, StartupProgress
from trendbotd.core.records import TradingMode
from trendbotd.errors import (
    ClockSkewError,
    CredentialsError,
    ExchangeAuthError,
    ExchangeError,
    JournalError,
    OperationalError,
    OutcomeUnknownError,
    RateLimitedError,
    TransientExchangeError,
    TrendbotError,
)
from trendbotd.journal.clock_record import record_clock_offset
from trendbotd.journal.operator_requests import finish_flatten, pending_flatten
from trendbotd.journal.store import Journal
from trendbotd.service.pidlock import resolve_lock_path
from trendbotd.trading.engine import Engine
from trendbotd.trading.positions import PositionManager
from trendbotd.trading.stack import (
    build_position_manager,
    journal_location,
    open_instance_journal,
)
from trendbotd.trading.startup import sync_account

if TYPE_CHECKING:
    from trendbotd.sim import SimExchange

logger = logging.getLogger(__name__)

RETRY_PENDING_S = 5.0  # a symbol whose closed candle is not decided yet is retried this often


class StartupWaiting:
    """The executor's ``waiting`` callback: the startup progress (extend the start timeout,
    stop on SIGTERM, enforce the start deadline) until READY, nothing after. The loop has
    its own watchdog and signal handling; a pause inside a tick (a rate limit, a query
    retry) must neither hit the long-past start deadline nor raise the stop request out
    of the middle of a tick."""

    def __init__(self, progress: StartupProgress) -> None:
        self._progress: StartupProgress | None = progress

    def __call__(self, seconds: float) -> None:
        if self._progress is not None:
            self._progress.waiting(seconds)

    def ready(self) -> None:
        self._progress = None


class TradingRunner:
    def __init__(
        self,
        config: Config,
        *,
        notifier: Notifier,
        paper_clock: Clock | None = None,
        fence: Callable[[], bool] | None = None,
        alerts: AlertSink | None = None,
    ) -> None:
        """``paper_clock``: drive a paper replay by this clock instead of the wall clock
        scaled by ``paper.speed`` (tests step a ManualClock candle by candle).
        ``fence``: with [cluster], True only while this node may change orders. ``alerts``:
        where trading events go (the order stack and engine get the same sink)."""
        self._config = config
        self._fence = fence
        self._notifier = notifier
        self._alerts: AlertSink = alerts if alerts is not None else NullAlertSink()
        self._mode_seen = TradingMode.NORMAL
        self._outage = Outage(alert_after_s=config.alerts.unreachable_alert_s)
        self._journal: Journal | None = None
        self._sim: SimExchange | None = None  # paper mode only
        self._exchange: CcxtExchange | None = None
        self._recorded_clock: ClockOffset | None = None
        self._engine: Engine | None = None
        self._positions: PositionManager | None = None
        self._halt_seen = -1  # mode_since_ms of the halt last logged
        self._clock: Clock = SystemClock()
        self._paper_clock = paper_clock
        self._speed = 1.0
        self._last_tick_at = time.monotonic()  # reset when start() has synced
        self._not_before = 0.0  # monotonic: no tick before this (the exchange said wait)
        self._clock_gate = ClockGate()  # new orders refused while the clock offset is off

    # ----- Runner protocol -----

    def start(self, progress: StartupProgress) -> str:
        try:
            return self._start(progress)
        except (ExchangeAuthError, CredentialsError, JournalError) as e:
            self._alert_fatal(e)
            raise

    def _start(self, progress: StartupProgress) -> str:
        config = self._config
        progress.step("opening journal")
        self._journal = journal = open_instance_journal(config)
        base_url: str | None
        if config.exchange.paper:
            progress.step("starting simulated exchange")
            base_url, api_key, api_secret = self._start_paper_exchange()
        else:
            progress.step("loading credentials")
            creds = load_credentials(
                credentials_file=config.exchange.credentials_file,
                credential_name=config.exchange.credential_name,
            )
            base_url = config.exchange.base_url or None
            api_key, api_secret = creds.api_key.reveal(), creds.api_secret.reveal()
        self._exchange = exchange = CcxtExchange(
            exchange_id=config.exchange.id,
            api_key=api_key,
            api_secret=api_secret,
            base_url=base_url,
            demo=config.exchange.demo,
            recv_window_ms=self._recv_window_ms(),
            timeout_s=config.exchange.request_timeout_s,
            clock=self._clock,
            rate_limit=not config.exchange.paper,  # the simulator is local: no throttle
            max_clock_offset_ms=self._clock_bound_ms(),
            # in exchange time: at --speed N the same real-time cadence as live
            clock_resync_s=config.exchange.clock_resync_s * max(1.0, self._speed),
            governor=None if config.exchange.paper else governor_settings(config),
        )
        timeout_ms = int(config.service.startup_timeout_s * 1000 * self._speed)
        snapshot = sync_account(
            exchange=exchange,
            symbols=config.trading.symbols,
            progress=progress,
            clock=self._clock,
            deadline_ms=self._clock.now_ms() + timeout_ms,
            max_clock_offset_ms=self._clock_bound_ms(),
        )
        self._record_clock()
        progress.step("setting leverage")
        for symbol in config.trading.symbols:
            self._set_leverage(symbol)
        progress.step("reconciling journal with the exchange")
        waiting = StartupWaiting(progress)
        positions = build_position_manager(
            config, journal=journal, exchange=exchange, clock=self._clock,
            waiting=waiting, recv_window_ms=self._recv_window_ms(), fence=self._fence,
            alerts=self._alerts,
        )  # fmt: skip
        self._mode_seen = (
            journal.controls.mode().mode
        )  # a mode kept from the last run was reported then
        synced = positions.sync(snapshot)
        self._positions = positions
        self._engine = Engine(
            config=config,
            exchange=exchange,
            journal=journal,
            positions=positions,
            snapshot=synced.snapshot,
            alerts=self._alerts,
        )
        self._operator_requests_or_later()  # a flatten journalled while down, or cut short
        self._check_mode()
        mode = journal.controls.mode()
        if mode.mode.value != "normal":
            logger.error("mode.%s reason=%s", mode.mode.value, mode.reason)
        held = sum(1 for p in synced.snapshot.positions if not p.is_flat)
        telemetry.equity(synced.snapshot.balance.total)
        self._last_tick_at = time.monotonic()  # READY follows a full sync: re-sync from here
        waiting.ready()
        return (
            f"ready: {mode.mode.value}, equity {synced.snapshot.balance.total} "
            f"{synced.snapshot.balance.currency}, {held} open position(s)"
        )

    def seconds_until_next_tick(self) -> float:
        """Real seconds until the next tick: a closed candle to decide, or the periodic
        re-sync (``tick_interval_s`` after the last tick) that verifies positions and stops
        between candles, whichever comes first."""
        engine = self._require_engine()
        now = time.monotonic()
        return max(self._not_before - now, self._seconds_until_due(engine, now))

    def _seconds_until_due(self, engine: Engine, now: float) -> float:
        since_last = now - self._last_tick_at
        resync_s = max(0.0, self._config.service.tick_interval_s - since_last)
        if engine.has_pending:
            return min(resync_s, max(0.0, RETRY_PENDING_S - since_last))
        decision_s = max(0.0, engine.ms_until_next_decision() / 1000 / self._speed)
        return min(decision_s, resync_s)

    def operator_requests(self) -> str | None:
        """Act on what ``trendbotd halt`` / ``flatten`` journalled: say that a new halt
        holds (the entries already see it) and execute a pending flatten. Returns what was
        done, or None. Exchange trouble propagates: the request stays pending and the next
        tick (or wake) runs it again."""
        journal, positions = self._journal, self._positions
        if journal is None or positions is None:
            raise RuntimeError("runner used before start() synced")
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
        report = positions.flatten(symbols, reason=request.reason)
        outcome = (
            f"flat: {sum(1 for c in report.closed if c.flat)} position(s) closed, "
            f"{len(report.canceled)} entry order(s) canceled; halted"
        )
        finish_flatten(journal, request, outcome, now_ms=self._clock.now_ms())
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
        engine = self._require_engine()
        self._last_tick_at = time.monotonic()
        self._operator_requests_or_later()  # in case a wake was missed (no PID, no permission)
        self._recheck_clock(remeasure=self._clock_gate.refused is not None)
        try:
            status = engine.tick()
        except (ExchangeAuthError, JournalError) as e:
            self._alert_fatal(e)
            raise
        except OperationalError:
            raise
        except ExchangeError as e:
            self._exchange_failed(e)
            self._check_mode()
            # Transient trouble: the next wake retries; stops on the exchange keep protecting.
            # Rate limited: not before the pause is over, or each wake fails at once again.
            if isinstance(e, RateLimitedError) and e.retry_after_s:
                self._not_before = time.monotonic() + e.retry_after_s / self._speed
            logger.warning("tick.exchange_error error=%s", e)
            self._recheck_clock(remeasure=False)
            return self._clock_gate.status(f"exchange error, retrying: {e}")
        self._exchange_back()
        self._check_mode()
        if self._exchange is not None:
            self._exchange.keep_clock_fresh()  # after the orders, never in front of one
            self._record_clock()
        self._recheck_clock(remeasure=False)
        return self._clock_gate.status(status)

    # ----- trading alerts about a change of state -----

    def _check_mode(self) -> None:
        """Report a change of the trading mode, whoever made it (a sync, a guard, the
        operator's resume/halt): the journal holds the mode, so it is read once a tick."""
        if self._journal is None:
            return
        mode = self._journal.controls.mode()
        for event in mode_events(self._mode_seen, mode.mode):
            self._alerts.emit(event, key="mode", mode=mode.mode.value, reason=mode.reason)
        self._mode_seen = mode.mode

    def _exchange_failed(self, error: ExchangeError) -> None:
        unreachable = isinstance(error, TransientExchangeError | OutcomeUnknownError) and (
            not isinstance(error, RateLimitedError | ClockSkewError)
        )
        if not unreachable:
            self._exchange_back()  # it answered, even if with an error
            return
        now = time.monotonic()
        if self._outage.failed(now):
            self._alerts.emit(
                "exchange.unreachable",
                key="exchange",
                down_s=f"{self._outage.down_for(now):.0f}",
                error=str(error),
            )

    def _exchange_back(self) -> None:
        lasted = self._outage.succeeded(time.monotonic())
        if lasted is not None:
            self._alerts.emit("exchange.back", key="exchange", down_s=f"{lasted:.0f}")

    def _alert_fatal(self, error: ExchangeAuthError | CredentialsError | JournalError) -> None:
        event = "journal.error" if isinstance(error, JournalError) else "credentials.rejected"
        self._alerts.emit(event, error=str(error), exit_code=int(error.exit_code))

    def _recheck_clock(self, *, remeasure: bool) -> None:
        """The clock guard's verdict on the offset as it stands (a -1021 inside the tick
        re-measures it). While orders are refused, each tick measures afresh first, so a
        clock that is right again is believed within one tick."""
        exchange = self._exchange
        if exchange is None:
            return
        if remeasure:
            try:
                exchange.measure_clock()
            except ExchangeError as e:
                logger.warning("clock.remeasure_failed error=%s", e)
            self._record_clock()
        offset = exchange.clock_offset
        verdict = exchange.clock_guard.check(offset, now_ms=self._clock.now_ms())
        offset_ms = None if offset is None else offset.offset_ms
        was = self._clock_gate.refused
        now = self._clock_gate.update(verdict, offset_ms=offset_ms)
        if was is None and now is not None:
            self._alerts.emit("clock.skew_refusing", key="clock", reason=now, offset_ms=offset_ms)
        elif was is not None and now is None:
            self._alerts.emit("clock.skew_cleared", key="clock", offset_ms=offset_ms, was=was)

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
        if self._engine is not None:
            self._engine.config = merged

    def stop(self) -> None:
        try:
            if self._engine is not None:
                logger.info(
                    "shutdown.done %s", self._engine.shutdown(self._config.risk.shutdown_policy)
                )
        finally:
            if self._exchange is not None:
                self._exchange.close()
            if self._journal is not None:
                self._journal.close()
            if self._sim is not None:
                self._sim.stop()

    # ----- read-only views (status, tests) -----

    @property
    def journal(self) -> Journal | None:
        """The instance's journal once start() has opened it."""
        return self._journal

    @property
    def paper_exchange(self) -> SimExchange | None:
        """The simulated exchange in paper mode (None live or before start)."""
        return self._sim

    def market(self, symbol: str) -> Market:
        """The exchange's rules for ``symbol`` as loaded at start-up."""
        return self._require_engine().market(symbol)

    # ----- helpers -----

    def _recv_window_ms(self) -> int:
        # Scaled like the clock bound in a fast replay; Binance caps it at 60 s. In a cluster
        # the lease's margin is computed from cluster.recv_window_ms: sign with no more.
        window = self._config.exchange.recv_window_ms
        if self._config.cluster.enabled:
            window = min(window, self._config.cluster.recv_window_ms)
        return min(60_000, int(window * max(1.0, self._speed)))

    def _clock_bound_ms(self) -> int:
        # A paper replay at --speed N stretches every real millisecond of round trip into N:
        # the bound scales with it (the simulator shares our clock, so the true offset is 0).
        # The simulator's response_delay_ms is a slow network by setting: the half of it that
        # each measurement cannot see through is allowed on top, or it could never start.
        config = self._config
        bound = config.exchange.max_clock_offset_ms
        if config.exchange.paper:
            bound += (config.paper.response_delay_ms + 1) // 2
        return int(bound * max(1.0, self._speed))

    def _record_clock(self) -> None:
        """Journal the offset for ``trendbotd status`` whenever it was measured anew."""
        offset = None if self._exchange is None else self._exchange.clock_offset
        if offset is None or self._journal is None or offset == self._recorded_clock:
            return
        record_clock_offset(self._journal, offset, now_ms=self._clock.now_ms())
        self._recorded_clock = offset

    def _require_engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("runner used before start() succeeded")
        return self._engine

    def _set_leverage(self, symbol: str) -> None:
        assert self._exchange is not None
        try:
            self._exchange.set_leverage(symbol, self._config.trading.leverage)
        except ExchangeAuthError:
            raise
        except ExchangeError as e:
            # Binance refuses a leverage change some positions cannot carry; the guards
            # still cap exposure by the configured leverage.
            logger.warning("leverage.not_set symbol=%s error=%s", symbol, e)

    def _start_paper_exchange(self) -> tuple[str, str, str]:
        # The simulator is imported only in paper mode: live start-up does not pay for it.
        from trendbotd.sim import SimConfig, SimExchange  # noqa: PLC0415

        config = self._config
        state_file = _paper_state_file(config)
        if self._paper_clock is not None:
            self._clock = self._paper_clock
        else:
            saved = SimExchange.saved_clock_ms(state_file)
            now = SystemClock().now_ms()
            start = max(now, saved or 0)
            self._speed = config.paper.speed
            if self._speed != 1.0 or start != now:
                self._clock = ScaledClock(start_ms=start, speed=self._speed)
        self._sim = sim = SimExchange(
            SimConfig(
                symbols=config.trading.symbols,
                start_balance=config.paper.start_balance,
                seed=config.paper.seed,
                regime=config.paper.regime,
                data_csv=config.paper.data_csv,
                timeframe=config.trading.timeframe,
                clock=self._clock,
                response_delay_ms=config.paper.response_delay_ms,
                port=config.paper.port,
                state_file=state_file,
            )
        )
        sim.start()
        register_secret(sim.api_secret)
        logger.info(
            "paper.exchange base_url=%s speed=%s regime=%s state_file=%s",
            sim.base_url,
            self._speed,
            config.paper.regime,
            state_file,
        )
        return sim.base_url, sim.api_key, sim.api_secret


def governor_settings(config: Config) -> GovernorSettings:
    """The weight budget of a live instance, in a file shared by every instance on the
    host that talks to the same exchange host (Binance counts request weight per IP)."""
    rl = config.ratelimit
    path = rl.shared_file
    if path is None:
        lock = resolve_lock_path(
            config.instance.name, config.instance.runtime_dir, env=os.environ,
            euid=os.geteuid(), cwd=Path.cwd(), create=False,
        )  # fmt: skip
        ex = config.exchange
        host = urlsplit(ex.base_url).netloc if ex.base_url else ("demo" if ex.demo else "live")
        path = lock.path.parent / f"ratelimit-{ex.id}-{re.sub(r'[^A-Za-z0-9.-]', '_', host)}.json"
    logger.info(
        "ratelimit.budget file=%s weight_limit=%s share=%s urgent_share=%s",
        path, rl.weight_limit, rl.share, rl.urgent_share,
    )  # fmt: skip
    limits = BudgetLimits(
        weight_per_window=rl.weight_limit,
        orders_per_10s=rl.orders_per_10s,
        orders_per_window=rl.orders_per_minute,
        window_ms=int(rl.window_s * 1000),
        share=rl.share,
        urgent_share=rl.urgent_share,
    )
    return GovernorSettings(limits=limits, store=SharedBudgetFile(path), max_wait_s=rl.max_wait_s)


def _paper_state_file(config: Config) -> Path:
    _, journal_path = journal_location(config)
    return journal_path.with_suffix(".paper.json")
