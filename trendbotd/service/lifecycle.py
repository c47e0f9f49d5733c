"""``trendbotd run``: the lifecycle in one place.

lock (taken by the CLI before this module is even imported) -> daemonize (only with
--daemon) -> logging -> notifier -> effective config logged -> runner built (heavy imports
happen there, behind the lock) -> startup sync reported as STATUS= steps -> READY=1 ->
loop -> STOPPING=1 -> runner.stop() -> lock released.

The loop (service/loop.py) is the only sender of WATCHDOG=1: after a tick, and after each
sleep slice while waiting for the next tick. A stuck tick therefore stops the pings and
systemd's watchdog fires, as it should.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trendbotd import __version__
from trendbotd.alerts.sink import NullAlertSink  # watchdog.stall
from trendbotd.config import Config
from trendbotd.core.ports import Notifier
from trendbotd.errors import StartupSyncError, TrendbotError
from trendbotd.exitcodes import ExitCode
from trendbotd.service import daemonize
from trendbotd.service.logsetup import LogMode, configure_logging
from trendbotd.service.loop import Loop, RunOptions
from trendbotd.service.notify import NullNotifier, make_notifier
from trendbotd.service.pidlock import LockLocation, PidLock
from trendbotd.service.signals import SignalQueue, StopRequested, enable_faulthandler
from trendbotd.service.stall_watch import start_stall_watch  # watchdog.stall

if TYPE_CHECKING:
    from trendbotd.alerts.wiring import Alerts
    from trendbotd.service.runner import Runner

logger = logging.getLogger(__name__)

_LAUNCHER_GRACE_S = 30.0  # the --daemon launcher waits startup_timeout_s plus this


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
            from trendbotd.trading.compose.metrics import start_metrics  # noqa: PLC0415 - same

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
