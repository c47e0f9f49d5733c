"""The real ``trendbotd`` CLI and lifecycle, with a scripted runner in place of the trading one.

For the few lifecycle cases the simulated exchange cannot produce on demand: a tick that
hangs forever (the watchdog must stop), a start that fails after its first steps, a start
that waits until told to finish. Everything else (lock, daemonizing, signals, sd_notify,
logging) is the production code path. Usage::

    python tests/integration/scripted_daemon.py run --foreground --config X.toml

Behaviour comes from environment variables:
  SCRIPT_FAIL_START=<message>   start() raises StartupSyncError after its steps
  SCRIPT_HANG_FILE=<path>       a tick blocks forever once this file exists (and touches
                                <path>.hanging)
  SCRIPT_GATE_FILE=<path>       start() waits (reporting waiting()) until this file exists
  SCRIPT_LOG_SECRET=<value>     start() logs the value and an exception carrying it
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

from trendbotd.adapters.credentials import register_secret
from trendbotd.alerts.sink import AlertSink
from trendbotd.cli import main
from trendbotd.config import Config
from trendbotd.core.ports import Notifier, StartupProgress
from trendbotd.errors import StartupSyncError
from trendbotd.service import runner as runner_module

logger = logging.getLogger("scripted_runner")


class ScriptedRunner:
    def __init__(self, config: Config) -> None:
        self._interval = config.service.tick_interval_s
        self._next = time.monotonic()
        self._ticks = 0
        self.reloads = 0

    def start(self, progress: StartupProgress) -> str:
        progress.step("syncing time")
        gate = os.environ.get("SCRIPT_GATE_FILE")
        while gate and not Path(gate).exists():
            progress.waiting(0.2)
            time.sleep(0.2)
        progress.step("syncing positions")
        secret = os.environ.get("SCRIPT_LOG_SECRET")
        if secret:
            register_secret(secret)
            logger.info("credentials loaded api_key=%s raw=%s", secret, secret)
            try:
                _fail_with(secret)
            except ValueError:
                logger.exception("scripted failure")
        failure = os.environ.get("SCRIPT_FAIL_START")
        if failure:
            raise StartupSyncError(failure)
        return "trading 1 symbol (scripted)"

    def seconds_until_next_tick(self) -> float:
        return self._next - time.monotonic()

    def tick(self) -> str:
        hang = os.environ.get("SCRIPT_HANG_FILE")
        if hang and Path(hang).exists():
            Path(f"{hang}.hanging").touch()  # the test's condition: no ping can follow
            while True:
                time.sleep(3600)
        self._ticks += 1
        self._next = time.monotonic() + self._interval
        return f"tick {self._ticks}"

    def operator_requests(self) -> str | None:
        return None

    def reload(self, config: Config) -> None:
        self._interval = config.service.tick_interval_s
        self.reloads += 1

    def stop(self) -> None:
        logger.info("scripted.stop ticks=%d", self._ticks)


def _fail_with(secret: str) -> None:
    raise ValueError(f"request failed with secret {secret}")


def build_runner(
    config: Config, *, notifier: Notifier, alerts: AlertSink | None = None
) -> ScriptedRunner:
    del notifier, alerts
    return ScriptedRunner(config)


if __name__ == "__main__":
    runner_module.build_runner = build_runner
    sys.exit(int(main()))
