"""Prometheus exposition: the only module that imports prometheus_client.

Two sources, one dedicated registry (never the library's global one):

- ``TelemetrySink``: counters and gauges the order path reports as it goes
  (trendbotd.core.telemetry hooks): exchange requests, errors by code, the request weight the
  exchange reports, the decision-to-order latency, equity, alert outbox and failures.
- ``StateCollector``: everything the journal already knows, read at scrape time in the
  HTTP thread through a read-only connection (what ``trendbotd status`` reads): mode,
  last tick, clock offset, positions and their stops, unfinished intents, orders by
  purpose and outcome. The trading thread does no work for these.

The server is prometheus_client's own WSGI server in a daemon thread, bound exactly to
the configured address; a slow or hung scraper can only hold that thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from trendbotd.core.listen_address import ListenAddress
from trendbotd.core.ports import Notifier
from trendbotd.errors import ConfigError, TrendbotError
from trendbotd.journal.metrics_view import MODES, PURPOSES, JournalView

logger = logging.getLogger(__name__)

PREFIX = "trendbotd_"
# Decision-to-order latency: a market order on a healthy link answers in 10-300 ms; the
# tail up to a minute shows rate-limit waits and retries.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _unset_gauge(name: str, doc: str, registry: CollectorRegistry) -> Gauge:
    """A gauge that reads NaN (not a misleading 0) until its first value arrives."""
    gauge = Gauge(PREFIX + name, doc, registry=registry)
    gauge.set(float("nan"))
    return gauge


class TelemetrySink:
    """trendbotd.core.telemetry.TelemetrySink over prometheus_client metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            PREFIX + "exchange_requests",
            "Requests sent to the exchange (every attempt, retries included).",
            registry=registry,
        )
        self.errors = Counter(
            PREFIX + "exchange_errors",
            "Failed exchange calls by the exchange's error code, http_<status> without "
            "one, or network when no answer came.",
            ["code"],
            registry=registry,
        )
        self.weight = _unset_gauge(
            "request_weight_used",
            "Request weight used in the current window, as the exchange last reported it "
            "(X-MBX-USED-WEIGHT-1M); NaN until it reports one.",
            registry,
        )
        self.latency = Histogram(
            PREFIX + "decision_to_order_seconds",
            "From an order's intent being journalled (the decision) to the exchange "
            "accepting it, by purpose.",
            ["purpose"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        for purpose in PURPOSES:
            self.latency.labels(purpose)  # present at 0 before the first order
        self.equity_gauge = _unset_gauge(
            "equity",
            "Total account balance in the settlement currency as the last sync read it; "
            "NaN until the first read.",
            registry,
        )
        self.outbox = Gauge(
            PREFIX + "alert_outbox_depth",
            "Alerts waiting in the outbox to be delivered.",
            registry=registry,
        )
        self.alert_failures = Counter(
            PREFIX + "alert_failures",
            "Failed alert delivery attempts.",
            registry=registry,
        )

    def exchange_request(self) -> None:
        self.requests.inc()

    def exchange_answer(self, *, used_weight: int | None) -> None:
        if used_weight is not None:
            self.weight.set(used_weight)

    def exchange_error(self, *, code: str) -> None:
        self.errors.labels(code).inc()

    def order_answered(self, *, purpose: str, seconds: float) -> None:
        self.latency.labels(purpose).observe(max(0.0, seconds))

    def equity(self, total: Decimal) -> None:
        self.equity_gauge.set(float(total))

    def alert_outbox_depth(self, depth: int) -> None:
        self.outbox.set(depth)

    def alert_failed(self, *, channel: str) -> None:
        self.alert_failures.inc()


class StateCollector(Collector):
    """Reads the daemon's state at scrape time. ``read_view`` returns None while there is
    no journal yet; a failing read is logged and leaves its metrics out of that scrape
    (a scrape never fails because of it: up and ready still answer)."""

    def __init__(
        self, *, read_view: Callable[[], JournalView | None], ready: Callable[[], bool]
    ) -> None:
        self._read_view = read_view
        self._ready = ready

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        yield _gauge("up", "1 while the daemon process serves metrics.", 1)
        yield _gauge(
            "ready", "1 after the startup sync (READY=1) until stopping.", int(self._ready())
        )
        try:
            view = self._read_view()
        except TrendbotError as e:
            logger.warning("metrics.journal_unreadable error=%s", e)
            return
        if view is not None:
            yield from _journal_metrics(view)


def _gauge(name: str, doc: str, value: float | None) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, doc, value=float("nan") if value is None else value)


def _journal_metrics(view: JournalView) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    yield from _state_metrics(view)
    yield from _position_metrics(view)
    yield from _order_metrics(view)


def _state_metrics(view: JournalView) -> Iterator[GaugeMetricFamily]:
    """The mode in force and when the loop, the sync and the clock were last seen."""
    mode = GaugeMetricFamily(
        PREFIX + "mode",
        "1 for the trading mode in force (normal, reduce_only, halted), 0 for the others.",
        labels=["mode"],
    )
    for name in MODES:
        mode.add_metric([name], 1 if name == view.mode else 0)
    yield mode
    yield _gauge(
        "last_tick_timestamp_seconds",
        "Unix time of the last completed tick (NaN before the first).",
        view.last_tick_s,
    )
    yield _gauge(
        "last_sync_timestamp_seconds",
        "Unix time of the last sync of positions and stops.",
        view.last_sync_s,
    )
    yield _gauge(
        "clock_offset_seconds",
        "Exchange clock minus host clock, as last measured (NaN before).",
        view.clock_offset_s,
    )


def _position_metrics(view: JournalView) -> Iterator[GaugeMetricFamily]:
    positions = GaugeMetricFamily(
        PREFIX + "position_amount",
        "Open position by symbol as the last sync saw it, signed (short < 0), base units.",
        labels=["symbol"],
    )
    notional = GaugeMetricFamily(
        PREFIX + "position_notional",
        "Open position's notional at its entry price by symbol, quote currency.",
        labels=["symbol"],
    )
    for symbol, amount in sorted(view.positions.items()):
        positions.add_metric([symbol], float(amount))
        notional.add_metric([symbol], float(view.notional[symbol]))
    yield positions
    yield notional
    yield _gauge("positions", "Open positions as the last sync saw them.", len(view.positions))
    yield _gauge(
        "positions_without_stop",
        "Open positions the last sync left without a protective stop (it tries to place "
        "a missing one first). Must be 0.",
        view.positions_without_stop,
    )


def _order_metrics(view: JournalView) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    unfinished = GaugeMetricFamily(
        PREFIX + "unfinished_intents",
        "Journalled orders whose outcome is not final yet, by state: acked (open on the "
        "exchange: resting stops), pending, sent, unknown (in doubt until queried).",
        labels=["state"],
    )
    for state, count in view.unfinished_intents.items():
        unfinished.add_metric([state], count)
    yield unfinished
    orders = CounterMetricFamily(
        PREFIX + "orders",
        "Orders by purpose and final outcome, from the journal (kept across restarts).",
        labels=["purpose", "outcome"],
    )
    for (purpose, outcome), count in sorted(view.orders.items()):
        orders.add_metric([purpose, outcome], count)
    yield orders


class ReadyTracker:
    """A Notifier that passes everything on and remembers whether READY=1 holds."""

    def __init__(self, inner: Notifier) -> None:
        self._inner = inner
        self._ready = threading.Event()

    @property
    def is_ready(self) -> bool:
        return self._ready.is_set()

    def ready(self, status: str) -> None:
        self._ready.set()
        self._inner.ready(status)

    def status(self, text: str) -> None:
        self._inner.status(text)

    def watchdog(self) -> None:
        self._inner.watchdog()

    def extend_timeout(self, seconds: float) -> None:
        self._inner.extend_timeout(seconds)

    def reloading(self) -> None:
        self._ready.clear()
        self._inner.reloading()

    def stopping(self, status: str) -> None:
        self._ready.clear()
        self._inner.stopping(status)

    @property
    def watchdog_interval_s(self) -> float | None:
        return self._inner.watchdog_interval_s


class MetricsServer:
    """/metrics on ``address`` until ``close``."""

    def __init__(self, registry: CollectorRegistry, address: ListenAddress) -> None:
        try:
            server, thread = start_http_server(address.port, addr=address.host, registry=registry)
        except OSError as e:
            # Taken by another process (or not an address of this host): retrying will
            # not help, the configuration must change.
            raise ConfigError(f"metrics.listen {address}: cannot listen: {e.strerror}") from e
        self._server: WSGIServer = server
        self._thread = thread
        self.address = ListenAddress(address.host, int(server.server_address[1]))
        logger.info("metrics.listening address=%s", self.address)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_metrics(
    address: ListenAddress,
    *,
    read_view: Callable[[], JournalView | None],
    notifier: Notifier,
    tick_interval_s: Callable[[], float],
) -> tuple[ReadyTracker, TelemetrySink, MetricsServer]:
    """A dedicated registry with both sources, served on ``address``. Raises ConfigError
    when the address cannot be bound."""
    tracker = ReadyTracker(notifier)
    registry, sink = build_registry(
        read_view=read_view, ready=lambda: tracker.is_ready, tick_interval_s=tick_interval_s
    )
    server = MetricsServer(registry, address)
    return tracker, sink, server


def build_registry(
    *,
    read_view: Callable[[], JournalView | None],
    ready: Callable[[], bool],
    tick_interval_s: Callable[[], float],
) -> tuple[CollectorRegistry, TelemetrySink]:
    """Every metric the daemon exposes, in a registry of its own."""
    registry = CollectorRegistry()
    sink = TelemetrySink(registry)
    Gauge(
        PREFIX + "tick_interval_seconds",
        "service.tick_interval_s in force: the longest planned gap between two ticks.",
        registry=registry,
    ).set_function(tick_interval_s)
    registry.register(StateCollector(read_view=read_view, ready=ready))
    return registry, sink
