"""The daemon's main loop, after READY: ticks on the runner's schedule, acts on queued
signals (stop, reload, an operator's wake), feeds the watchdog. The only sender of
WATCHDOG=1: a stuck tick stops the pings and systemd's watchdog fires, as it should."""

from __future__ import annotations

import logging
import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from trendbotd.config import Config, load_config
from trendbotd.core.ports import Notifier
from trendbotd.errors import ConfigError, OperationalError, TrendbotError
from trendbotd.exitcodes import ExitCode
from trendbotd.service.logsetup import set_level
from trendbotd.service.signals import (
    OPERATOR_SIGNAL,
    RELOAD_SIGNAL,
    STOP_SIGNALS,
    SignalQueue,
)

if TYPE_CHECKING:
    from trendbotd.service.runner import Runner

logger = logging.getLogger(__name__)

MAX_TICK_FAILURES = 5  # consecutive; then exit 1 and let systemd restart us
TICK_RETRY_BASE_S = 1.0  # back-off after a failed tick: 1, 2, 4, 8 s ...
TICK_RETRY_MAX_S = 30.0
_MAX_SLEEP_S = 1.0


@dataclass(frozen=True, slots=True)
class RunOptions:
    config_path: Path | None
    paper: bool
    daemon: bool


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
        from trendbotd.trading.compose.metrics import reload_metrics  # noqa: PLC0415 - behind the lock

        reload_metrics(self.config, new)
        self.config = new
        logger.info("config.reloaded changed=%d", len(changed))
        self._notifier.ready(f"configuration reloaded ({len(changed)} settings changed)")
