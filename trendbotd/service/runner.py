"""What the lifecycle drives: startup sync, then ticks, reload, stop.

The composition of concrete adapters (exchange, simulated exchange, journal) happens in
trading/compose/, which ``build_runner`` imports after the lock (ccxt, numpy are heavy).
"""

from __future__ import annotations

from typing import Protocol

from trendbotd.alerts.sink import AlertSink
from trendbotd.config import Config
from trendbotd.core.ports import Notifier, StartupProgress


class Runner(Protocol):
    def start(self, progress: StartupProgress) -> str:
        """Startup sync. Returns the READY status text; raises TrendbotError on failure."""
        ...

    def seconds_until_next_tick(self) -> float: ...

    def tick(self) -> str:
        """One loop iteration. Returns the STATUS= text."""
        ...

    def operator_requests(self) -> str | None:
        """Act on a halt / flatten the operator journalled; what was done, or None."""
        ...

    def reload(self, config: Config) -> None: ...

    def stop(self) -> None:
        """Apply the shutdown policy, close the exchange and the journal."""
        ...


def build_runner(config: Config, *, notifier: Notifier, alerts: AlertSink | None = None) -> Runner:
    """``alerts``: where trading events go (None: the log only). The parts come from the
    composition root, trading/compose/, imported here: behind the lock."""
    if config.cluster.enabled:
        from trendbotd.trading.compose.cluster import cluster_runner  # noqa: PLC0415

        return cluster_runner(config, notifier=notifier, alerts=alerts)
    from trendbotd.trading.compose.root import trading_runner  # noqa: PLC0415

    runner, _ = trading_runner(config, notifier=notifier, alerts=alerts)
    return runner
