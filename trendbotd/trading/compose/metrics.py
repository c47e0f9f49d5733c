"""Turns ``[metrics]`` on: the one call the lifecycle makes, before the runner.

prometheus_client is imported only when ``metrics.listen`` is set, so a daemon without
metrics neither loads it nor pays its memory.
"""

from __future__ import annotations

import logging
import threading

from trendbotd.config import Config
from trendbotd.core import telemetry
from trendbotd.core.listen_address import parse_listen
from trendbotd.core.ports import Notifier
from trendbotd.errors import TrendbotError
from trendbotd.journal.metrics_view import JournalView, journal_view
from trendbotd.journal.status import collect
from trendbotd.journal.store import Journal, open_journal
from trendbotd.trading.compose.journal import journal_location

logger = logging.getLogger(__name__)


class JournalReader:
    """The scrape-time view of this instance's journal (read-only; None before the
    daemon has created it). Called from the metrics server's request threads, one at a
    time: the connection is opened once (opening runs an integrity check, too much for
    every scrape) and dropped after a failed read, so the next scrape opens afresh."""

    def __init__(self, config: Config) -> None:
        self.config = config  # replaced on reload (risk.reduce_only, tick interval)
        self._journal: Journal | None = None
        self._lock = threading.Lock()

    def __call__(self) -> JournalView | None:
        with self._lock:
            if self._journal is None:
                _, path = journal_location(self.config, create=False)
                if not path.exists():
                    return None
                self._journal = open_journal(path, read_only=True, any_thread=True)
            try:
                report = collect(self._journal)
                counts = self._journal.orders.intent_counts()
            except TrendbotError:
                self._close()
                raise
        return journal_view(report, counts, reduce_only_configured=self.config.risk.reduce_only)

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None


_reader: JournalReader | None = None  # the serving one, for reload_metrics


def start_metrics(config: Config, notifier: Notifier) -> Notifier:
    """Serve /metrics when configured and route the telemetry hooks to it; returns the
    notifier the lifecycle must use from now on (it tracks READY for the metrics).
    Raises ConfigError (exit 78) when the address cannot be bound."""
    global _reader
    if not config.metrics.listen:
        return notifier
    from trendbotd.adapters.metrics import serve_metrics  # noqa: PLC0415 - only when enabled

    reader = JournalReader(config)
    tracker, sink, _server = serve_metrics(
        parse_listen(config.metrics.listen),
        read_view=reader,
        notifier=notifier,
        tick_interval_s=lambda: reader.config.service.tick_interval_s,
    )
    telemetry.install(sink)
    _reader = reader
    return tracker


def reload_metrics(old: Config, new: Config) -> None:
    """After a successful reload (SIGHUP): the metrics follow the settings in force;
    the [metrics] table itself binds a socket and takes effect at the next restart."""
    if new.metrics != old.metrics:
        logger.warning("config.reload metrics.* changes take effect at the next restart")
    if _reader is not None:
        _reader.config = new
