"""Turns ``[metrics]`` on: the one call the lifecycle makes (app.py), before the runner.

prometheus_client is imported only when ``metrics.listen`` is set, so a daemon without
metrics neither loads it nor pays its memory.
"""

from __future__ import annotations

from pathlib import Path

from trendbotd import telemetry
from trendbotd.config import Config
from trendbotd.listen_address import parse_listen
from trendbotd.metrics_view import JournalView, journal_view
from trendbotd.orders.journal import open_journal
from trendbotd.orders.stack import journal_location
from trendbotd.orders.status import collect
from trendbotd.ports import Notifier


class JournalReader:
    """The scrape-time view of this instance's journal (read-only; None before the
    daemon has created it). Runs in the metrics server's thread."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._path: Path | None = None

    def __call__(self) -> JournalView | None:
        if self._path is None:
            _, path = journal_location(self._config, create=False)
            if not path.exists():
                return None
            self._path = path
        with open_journal(self._path, read_only=True) as journal:
            report = collect(journal)
            counts = journal.intent_counts()
        return journal_view(report, counts, reduce_only_configured=self._config.risk.reduce_only)


def start_metrics(config: Config, notifier: Notifier) -> Notifier:
    """Serve /metrics when configured and route the telemetry hooks to it; returns the
    notifier the lifecycle must use from now on (it tracks READY for the metrics).
    Raises ConfigError (exit 78) when the address cannot be bound."""
    if not config.metrics.listen:
        return notifier
    from trendbotd.adapters.metrics import serve_metrics  # noqa: PLC0415 - only when enabled

    tracker, sink, _server = serve_metrics(
        parse_listen(config.metrics.listen),
        read_view=JournalReader(config),
        notifier=notifier,
        tick_interval_s=config.service.tick_interval_s,
    )
    telemetry.install(sink)
    return tracker
