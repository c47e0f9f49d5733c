"""The trading runner's parts, built in start-up order (each step a STATUS= line):
journal (a corrupt journal stops us before any exchange call), paper exchange,
credentials, exchange clock/account/balance/positions/orders, leverage, reconciliation of
every unfinished journal entry, the engine. READY=1 follows in the runner.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from trendbotd.adapters.ccxt_exchange import CcxtExchange
from trendbotd.adapters.clock import SystemClock
from trendbotd.alerts.sink import AlertSink, NullAlertSink
from trendbotd.config import Config
from trendbotd.core.clock import Clock
from trendbotd.core.ports import Notifier, StartupProgress
from trendbotd.errors import ExchangeAuthError, ExchangeError
from trendbotd.journal.clock_record import record_clock_offset
from trendbotd.journal.store import Journal
from trendbotd.trading.compose.exchange import (
    Endpoint,
    Timing,
    clock_bound_ms,
    connect_exchange,
    live_endpoint,
    paper_timing,
    recv_window_ms,
    start_paper_exchange,
)
from trendbotd.trading.compose.journal import build_position_manager, open_instance_journal
from trendbotd.trading.parts import TradingParts
from trendbotd.trading.runner import TradingRunner
from trendbotd.trading.startup import sync_account

if TYPE_CHECKING:
    from trendbotd.sim import SimExchange

logger = logging.getLogger(__name__)

# Candle clients: more than this would only move the wait to the exchange's rate limit.
MAX_CANDLE_WORKERS = 4


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


class TradingAssembly:
    """Builds the trading runner's parts at start() and closes them at close().

    ``paper_clock``: drive a paper replay by this clock instead of the wall clock scaled by
    ``paper.speed`` (tests step a ManualClock candle by candle). ``fence``: with [cluster],
    True only while this node may change orders. ``alerts``: the order stack's and the
    engine's sink."""

    def __init__(
        self,
        config: Config,
        *,
        paper_clock: Clock | None = None,
        fence: Callable[[], bool] | None = None,
        alerts: AlertSink | None = None,
    ) -> None:
        self._config = config
        self._paper_clock = paper_clock
        self._fence = fence
        self._alerts: AlertSink = alerts if alerts is not None else NullAlertSink()
        self._journal: Journal | None = None
        self._exchange: CcxtExchange | None = None
        self._candle_clients: list[CcxtExchange] = []  # extra clients: candles in parallel
        self.sim: SimExchange | None = None  # paper mode only, once started

    def start(self, progress: StartupProgress) -> TradingParts:
        config = self._config
        progress.step("opening journal")
        self._journal = journal = open_instance_journal(config)
        timing = self._connect(progress)
        exchange = self._exchange
        assert exchange is not None
        timeout_ms = int(config.service.startup_timeout_s * 1000 * timing.speed)
        snapshot = sync_account(
            exchange=exchange,
            symbols=config.trading.symbols,
            progress=progress,
            clock=timing.clock,
            deadline_ms=timing.clock.now_ms() + timeout_ms,
            max_clock_offset_ms=clock_bound_ms(config, timing.speed),
        )
        recorded = exchange.clock_offset
        if recorded is not None:  # for ``trendbotd status``
            record_clock_offset(journal, recorded, now_ms=timing.clock.now_ms())
        progress.step("setting leverage")
        for symbol in config.trading.symbols:
            self._set_leverage(exchange, symbol)
        progress.step("reconciling journal with the exchange")
        waiting = StartupWaiting(progress)
        positions = build_position_manager(
            config, journal=journal, exchange=exchange, clock=timing.clock,
            waiting=waiting, recv_window_ms=recv_window_ms(config, timing.speed),
            fence=self._fence, alerts=self._alerts,
        )  # fmt: skip
        mode_before_sync = journal.controls.mode().mode
        synced = positions.sync(snapshot)
        # Imported only now (numpy, the strategy: a fifth of the start-up's imports): a
        # position found without a stop has it from the sync above, that much sooner.
        from trendbotd.trading.engine import Engine  # noqa: PLC0415

        engine = Engine(
            config=config,
            exchange=exchange,
            journal=journal,
            positions=positions,
            snapshot=synced.snapshot,
            alerts=self._alerts,
            candle_sources=(exchange, *self._candle_clients),
        )
        return TradingParts(
            journal=journal, exchange=exchange, clock=timing.clock, speed=timing.speed,
            positions=positions, engine=engine, snapshot=synced.snapshot,
            mode_before_sync=mode_before_sync, recorded_clock=recorded, end_startup=waiting.ready,
        )  # fmt: skip

    def close(self) -> None:
        try:
            for client in (*self._candle_clients, self._exchange):
                if client is not None:
                    client.close()
            if self._journal is not None:
                self._journal.close()
        finally:
            if self.sim is not None:
                self.sim.stop()

    def _connect(self, progress: StartupProgress) -> Timing:
        config = self._config
        if config.exchange.paper:
            progress.step("starting simulated exchange")
            timing = paper_timing(config, paper_clock=self._paper_clock)
            self.sim = sim = start_paper_exchange(config, timing)
            endpoint = Endpoint(sim.base_url, sim.api_key, sim.api_secret)
        else:
            progress.step("loading credentials")
            timing = Timing(SystemClock())
            endpoint = live_endpoint(config)
        self._exchange = connect_exchange(config, timing=timing, endpoint=endpoint)
        # A ccxt client is not safe to share between threads: the due symbols' candles are
        # fetched in parallel on clients of their own (public klines: unsigned, and the
        # weight governor's budget file is shared by every client on the host).
        extra = min(len(config.trading.symbols), MAX_CANDLE_WORKERS) - 1
        self._candle_clients = [
            connect_exchange(config, timing=timing, endpoint=endpoint) for _ in range(extra)
        ]
        return timing

    def _set_leverage(self, exchange: CcxtExchange, symbol: str) -> None:
        try:
            exchange.set_leverage(symbol, self._config.trading.leverage)
        except ExchangeAuthError:
            raise
        except ExchangeError as e:
            # Binance refuses a leverage change some positions cannot carry; the guards
            # still cap exposure by the configured leverage.
            logger.warning("leverage.not_set symbol=%s error=%s", symbol, e)


def trading_runner(
    config: Config,
    *,
    notifier: Notifier,
    paper_clock: Clock | None = None,
    fence: Callable[[], bool] | None = None,
    alerts: AlertSink | None = None,
) -> tuple[TradingRunner, TradingAssembly]:
    """The single-host trading runner over its assembly (returned too: a paper replay
    reaches the simulator through it)."""
    assembly = TradingAssembly(config, paper_clock=paper_clock, fence=fence, alerts=alerts)
    runner = TradingRunner(config, assembly=assembly, notifier=notifier, alerts=alerts)
    return runner, assembly
