"""``trendbotd run``: the lifecycle in one place.

lock (taken by the CLI before this module is even imported) -> daemonize (only with
--daemon) -> logging -> notifier -> effective config logged -> runner built (heavy imports
happen there, behind the lock) -> startup sync reported as STATUS= steps -> READY=1 ->
loop -> STOPPING=1 -> runner.stop() -> lock released.

The loop is the only sender of WATCHDOG=1: after a tick, and after each sleep slice while
waiting for the next tick. A stuck tick therefore stops the pings and systemd's watchdog
fires, as it should.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import sys
import time
from collections.abc import Callable  # watchdog.stall
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trendbotd import __version__
from trendbotd.alerts.sink import NullAlertSink  # watchdog.stall
from trendbotd.config import Config, load_config
from trendbotd.core.ports import Notifier
from trendbotd.errors import ConfigError, OperationalError, StartupSyncError, TrendbotError
from trendbotd.exitcodes import ExitCode
from trendbotd.service import daemonize
from trendbotd.service.logsetup import LogMode, configure_logging, set_level
from trendbotd.service.notify import NullNotifier, make_notifier
from trendbotd.service.pidlock import LockLocation, PidLock
from trendbotd.service.signals import (
    OPERATOR_SIGNAL,
    RELOAD_SIGNAL,
    STOP_SIGNALS,
    SignalQueue,
    StopRequested,
    enable_faulthandler,
)
from trendbotd.service.stall_watch import start_stall_watch  # watchdog.stall

if TYPE_CHECKING:
    from trendbotd.alerts.wiring import Alerts
    from trendbotd.service.runner import Runner

logger = logging.getLogger(__name__)

MAX_TICK_FAILURES = 5  # consecutive; then exit 1 and let systemd restart us
TICK_RETRY_BASE_S = 1.0  # back-off after a failed tick: 1, 2, 4, 8 s ...
TICK_RETRY_MAX_S = 30.0
_MAX_SLEEP_S = 1.0
_LAUNCHER_GRACE_S = 30.0  # the --daemon launcher waits startup_timeout_s plus this


@dataclass(frozen=True, slots=True)
class RunOptions:
    config_path: Path | None
    paper: bool
    daemon: bool


def run(
    config: Config,
    options: RunOptions,
    *,
    lock: PidLock,
    location: LockLocation,
    signals: SignalQueue | None = None,
) -> int:
    """Serve in the foreground or from a detached daemon; ``lock`` is already held.

    ``signals``: the queue the CLI installed before taking the lock, so that a stop asked
    for since then is not lost; a fresh one otherwise.
    """
    if signals is None:
        signals = SignalQueue()
    fork, note = daemonize.should_fork(want_daemon=options.daemon, env=os.environ, pid=os.getpid())
    service = _Service(
        config=config,
        options=options,
        location=location,
        signals=signals,
        mode="daemon" if fork else "foreground",
        notes=[note] if note else [],
    )
    if fork:
        return daemonize.launch(
            lock,
            service.serve,
            handlers=signals.handler_map(),
            stderr_path=config.service.log_file,
            timeout_s=config.service.startup_timeout_s + _LAUNCHER_GRACE_S,
        )
    context = daemonize.make_context(
        lock, detach=False, handlers=signals.handler_map(), preserve=[]
    )
    with context:  # leaving it unlinks the PID file while the lock is still held
        return service.serve(daemonize.Handshake(None), context)


@dataclass
class _Service:
    config: Config
    options: RunOptions
    location: LockLocation
    signals: SignalQueue
    mode: LogMode
    notes: list[str] = field(default_factory=list)
    notifier: Notifier = field(default_factory=NullNotifier)
    alerts: Alerts | None = None

    def serve(self, handshake: daemonize.Handshake, context: Any) -> int:
        """Runs inside the open daemon context (foreground or detached)."""
        self.signals.open_wakeup()
        try:
            where = configure_logging(
                level=self.config.service.log_level,
                mode=self.mode,
                ident=self.config.instance.name,
                log_file=self.config.service.log_file,
            )
        except OSError as e:
            message = f"cannot set up logging ({self.mode}): {e}"
            print(f"trendbotd: {message}", file=sys.stderr)
            handshake.failed(ExitCode.CANT_CREATE, message)
            return ExitCode.CANT_CREATE
        enable_faulthandler()
        self.notifier = make_notifier()
        logger.info(
            "daemon.start version=%s pid=%s mode=%s log=%s",
            __version__,
            os.getpid(),
            self.mode,
            where,
        )
        logger.info("lock.held path=%s source=%s", self.location.path, self.location.source)
        for note in self.notes:
            logger.warning("daemon.note %s", note)
        for line in self.config.describe().splitlines():
            logger.info("%s", line)
        try:
            alerts = self._open_alerts()
        except TrendbotError as e:
            logger.error("startup.failed code=%d %s", e.exit_code, e)  # noqa: TRY400
            handshake.failed(e.exit_code, f"startup failed: {e}")
            return e.exit_code
        self.alerts = alerts
        code = self._lifecycle(handshake)
        logger.info("daemon.exit code=%s", code)
        alerts.end_run(code)
        return code

    def _open_alerts(self) -> Alerts:
        """The alert side path, before the heavy imports: a crash in the startup sync is
        already reported. Only an unusable channel secret stops the start."""
        from trendbotd.alerts.wiring import open_alerts  # noqa: PLC0415

        alerts = open_alerts(self.config)
        alerts.start_senders()
        alerts.begin_run(env=os.environ, pid=os.getpid())
        alerts.sink.emit("daemon.started", version=__version__, pid=os.getpid(), mode=self.mode)
        return alerts

    def _lifecycle(self, handshake: daemonize.Handshake) -> int:
        runner: Runner | None = None
        code: int = ExitCode.OK
        try:
            self.signals.check_stop()  # asked to stop before we got here: skip the heavy part
            from trendbotd.service import runner as runner_module  # noqa: PLC0415 - heavy, behind the lock
            from trendbotd.trading.observability import start_metrics  # noqa: PLC0415 - same

            self.notifier = start_metrics(self.config, self.notifier)
            runner = runner_module.build_runner(
                self.config,
                notifier=self.notifier,
                alerts=None if self.alerts is None else self.alerts.sink,
            )
            progress = _Progress(self.notifier, self.signals, self.config)
            ready_text = runner.start(progress)
        except StopRequested as stop:
            logger.info("daemon.stop_requested during=startup signal=%s", stop)
            self.notifier.stopping(f"stopping on {stop} during startup")
            handshake.failed(ExitCode.FAILURE, f"stopped by {stop} during startup")
        except TrendbotError as e:
            code = e.exit_code
            logger.error("startup.failed code=%d %s", code, e)  # noqa: TRY400 - one clear line
            self.notifier.status(f"startup failed: {e}")
            handshake.failed(code, f"startup failed: {e}")
        except Exception as e:
            code = ExitCode.FAILURE
            logger.exception("startup.crashed")
            self.notifier.status(f"startup crashed: {e!r}")
            handshake.failed(code, f"startup crashed: {e!r} (traceback in the log)")
        else:
            logger.info("daemon.ready %s", ready_text)
            if self.alerts is not None:  # queued before READY=1: a kill after READY keeps it
                self.alerts.sink.emit("daemon.ready", status=ready_text)
            self.notifier.ready(ready_text)
            handshake.ready(ready_text)
            stall = start_stall_watch(  # watchdog.stall: a thread apart from the loop
                self.alerts.sink if self.alerts is not None else NullAlertSink(),
                watchdog_half_s=self.notifier.watchdog_interval_s,
                tick_interval_s=self.config.service.tick_interval_s,
            )
            loop = Loop(
                runner,
                notifier=self.notifier,
                signals=self.signals,
                config=self.config,
                options=self.options,
                on_progress=stall.beat,  # watchdog.stall: the loop is alive
            )
            try:
                code = loop.run()
            finally:
                stall.stop()  # watchdog.stall
            self.config = loop.config
        finally:
            if runner is not None:
                code = _stop_runner(runner, code)
        return code


def _stop_runner(runner: Runner, code: int) -> int:
    try:
        runner.stop()
    except TrendbotError as e:
        logger.error("runner.stop_failed %s", e)  # noqa: TRY400 - expected failure, one line
        return code or e.exit_code
    except Exception:
        logger.exception("runner.stop_crashed")
        return code or ExitCode.FAILURE
    return code


class _Progress:
    """StartupProgress for the runner: STATUS= + log line per step, EXTEND_TIMEOUT_USEC
    before each wait. Also the safe points where a stop request or the startup deadline
    interrupt a long sync."""

    def __init__(self, notifier: Notifier, signals: SignalQueue, config: Config) -> None:
        self._notifier = notifier
        self._signals = signals
        self._timeout_s = config.service.startup_timeout_s
        self._margin_s = config.exchange.request_timeout_s + 5.0
        self._deadline = time.monotonic() + self._timeout_s

    def step(self, text: str) -> None:
        self._checkpoint()
        logger.info("startup.step %s", text)
        self._notifier.status(text)

    def waiting(self, seconds: float) -> None:
        self._checkpoint()
        logger.info("startup.waiting seconds=%.1f", seconds)
        self._notifier.extend_timeout(max(0.0, seconds) + self._margin_s)

    def _checkpoint(self) -> None:
        self._signals.check_stop()
        if time.monotonic() > self._deadline:
            raise StartupSyncError(
                f"startup sync did not complete within service.startup_timeout_s="
                f"{self._timeout_s:g} s"
            )


class _Watchdog:
    """WATCHDOG=1 at least every half of WATCHDOG_USEC while the loop runs (sleep slices of
    a quarter, pings closer than an eighth are skipped so fast ticks do not flood)."""

    def __init__(self, notifier: Notifier, on_progress: Callable[[], None]) -> None:
        self._notifier = notifier
        self._on_progress = on_progress  # watchdog.stall: every ping point is progress
        half = notifier.watchdog_interval_s
        self.slice_s = _MAX_SLEEP_S if half is None else min(_MAX_SLEEP_S, half / 2)
        self._min_gap = None if half is None else half / 4
        self._last = -math.inf

    def ping(self) -> None:
        self._on_progress()  # watchdog.stall
        if self._min_gap is None:
            return
        now = time.monotonic()
        if now - self._last >= self._min_gap:
            self._notifier.watchdog()
            self._last = now


class Loop:
    """Ticks on the runner's schedule, acts on queued signals, feeds the watchdog.

    ``config`` is the configuration in force (replaced by a successful reload)."""

    def __init__(
        self,
        runner: Runner,
        *,
        notifier: Notifier,
        signals: SignalQueue,
        config: Config,
        options: RunOptions,
        on_progress: Callable[[], None] = lambda: None,  # watchdog.stall
    ) -> None:
        self.config = config
        self._options = options
        self._runner = runner
        self._notifier = notifier
        self._signals = signals
        self._watchdog = _Watchdog(notifier, on_progress)  # watchdog.stall
        self._failures = 0
        self._retry_at = 0.0

    def run(self) -> int:
        self._watchdog.ping()
        while True:
            for signum in self._signals.pop_all():
                if signum in STOP_SIGNALS:
                    return self._stop(signum)
                if signum == RELOAD_SIGNAL:
                    self._reload()
                if signum == OPERATOR_SIGNAL:
                    code = self._operator()
                    if code is not None:
                        return code
            wait = max(self._runner.seconds_until_next_tick(), self._retry_at - time.monotonic())
            if wait > 0:
                self._signals.wait(min(wait, self._watchdog.slice_s))
                self._watchdog.ping()  # the loop is alive and waiting on schedule
                continue
            code = self._tick()
            if code is not None:
                return code
            self._watchdog.ping()

    def _tick(self) -> int | None:
        """One tick; an exit code when the daemon must stop."""
        try:
            status = self._runner.tick()
        except OperationalError as e:
            logger.error("tick.operational_error code=%d %s", e.exit_code, e)  # noqa: TRY400
            self._notifier.stopping(f"stopped: {e}")
            return e.exit_code
        except Exception as e:
            self._failures += 1
            if isinstance(e, TrendbotError):
                logger.error("tick.failed count=%d %s", self._failures, e)  # noqa: TRY400
            else:
                logger.exception("tick.crashed count=%d", self._failures)
            if self._failures >= MAX_TICK_FAILURES:
                self._notifier.stopping(f"stopped after {self._failures} failed ticks: {e!r}")
                logger.critical("daemon.giving_up failed_ticks=%d", self._failures)
                return ExitCode.FAILURE
            backoff = min(TICK_RETRY_BASE_S * 2.0 ** (self._failures - 1), TICK_RETRY_MAX_S)
            self._retry_at = time.monotonic() + backoff
            self._notifier.status(
                f"tick failed ({self._failures}/{MAX_TICK_FAILURES}), retry in {backoff:g} s: {e}"
            )
            return None
        self._failures = 0
        self._notifier.status(status)
        return None

    def _operator(self) -> int | None:
        """``trendbotd halt`` / ``flatten`` woke us: act now, not at the next tick. A
        failure leaves the request pending for the next tick; an exit code when the
        daemon must stop."""
        logger.info("operator.wake")
        try:
            done = self._runner.operator_requests()
        except OperationalError as e:
            logger.error("operator.operational_error code=%d %s", e.exit_code, e)  # noqa: TRY400
            self._notifier.stopping(f"stopped: {e}")
            return e.exit_code
        except TrendbotError as e:
            logger.error("operator.failed retrying=next tick %s", e)  # noqa: TRY400
            return None
        except Exception:
            logger.exception("operator.crashed retrying=next tick")
            return None
        if done is not None:
            self._notifier.status(done)
        return None

    def _stop(self, signum: int) -> int:
        name = signal.Signals(signum).name
        logger.info("daemon.stopping signal=%s", name)
        self._notifier.stopping(f"stopping on {name}")
        return ExitCode.OK

    def _reload(self) -> None:
        self._notifier.reloading()
        path = self._options.config_path
        logger.info("config.reload path=%s", path or self.config.source)
        try:
            new = load_config(path, paper=self._options.paper)
            self._runner.reload(new)
        except ConfigError as e:
            logger.error("config.reload_failed keeping=previous %s", e)  # noqa: TRY400
            self._notifier.ready(f"reload failed, running with the previous configuration: {e}")
            return
        except Exception:
            logger.exception("config.reload_crashed keeping=previous")
            self._notifier.ready("reload failed, running with the previous configuration")
            return
        if new.instance != self.config.instance:
            logger.warning("config.reload instance.* changes take effect at the next restart")
        if new.alerts != self.config.alerts:
            logger.warning("config.reload alerts.* changes take effect at the next restart")
        old_lines = set(self.config.describe().splitlines())
        changed = [line for line in new.describe().splitlines() if line not in old_lines]
        for line in changed:
            logger.info("config.changed %s", line)
        set_level(new.service.log_level)
        from trendbotd.trading.observability import reload_metrics  # noqa: PLC0415 - behind the lock

        reload_metrics(self.config, new)
        self.config = new
        logger.info("config.reloaded changed=%d", len(changed))
        self._notifier.ready(f"configuration reloaded ({len(changed)} settings changed)")
