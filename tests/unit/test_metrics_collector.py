"""The metrics adapter: the scrape-time view of a real journal, the telemetry counters,
the READY tracking and the HTTP server, read back through prometheus_client's own text
parser (what a Prometheus server would see)."""

from __future__ import annotations

import dataclasses
import math
import socket
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from orders_fakes import FakeExchange
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from trendbotd.adapters.metrics import (
    MetricsServer,
    ReadyTracker,
    StateCollector,
    TelemetrySink,
    serve_metrics,
)
from trendbotd.config import Config, InstanceConfig, RiskConfig
from trendbotd.core import telemetry
from trendbotd.core.clock import ManualClock
from trendbotd.core.domain import ClockOffset, Order, OrderRequest, OrderType, Side
from trendbotd.core.listen_address import ListenAddress
from trendbotd.core.records import (
    Intent,
    IntentSpec,
    IntentState,
    IntentUpdate,
    PositionView,
    Purpose,
)
from trendbotd.errors import ConfigError, InsufficientFundsError, JournalError
from trendbotd.journal.clock_record import record_clock_offset
from trendbotd.journal.metrics_view import OUTCOMES, PURPOSES, JournalView, journal_view
from trendbotd.journal.status import read_status
from trendbotd.journal.store import Journal, open_journal
from trendbotd.service.notify import NullNotifier
from trendbotd.trading.compose.metrics import JournalReader
from trendbotd.trading.executor import ExecutorPolicy, OrderExecutor

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
NOW = 1_700_000_000_000

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _parse(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _scrape(registry: CollectorRegistry) -> Samples:
    return _parse(generate_latest(registry).decode())


def _intent(cid: str, purpose: Purpose, *, symbol: str = BTC, seq: int = 0) -> Intent:
    return Intent(
        client_order_id=cid,
        symbol=symbol,
        side=Side.BUY,
        type=OrderType.MARKET,
        amount=Decimal("0.1"),
        purpose=purpose,
        candle_time_ms=0,
        seq=seq,
        state=IntentState.PENDING,
        created_ms=NOW,
        updated_ms=NOW,
    )


def _fill_journal(j: Journal) -> None:
    """Two filled entries, one rejected, one stop still open (ACKED), one exit in doubt;
    BTC long with its stop, ETH short without one."""
    for seq, (cid, purpose, state) in enumerate(
        [
            ("e1", Purpose.ENTRY, IntentState.FILLED),
            ("e2", Purpose.ENTRY, IntentState.FILLED),
            ("e3", Purpose.ENTRY, IntentState.REJECTED),
            ("s1", Purpose.STOP, IntentState.ACKED),
            ("x1", Purpose.EXIT, IntentState.UNKNOWN),
        ]
    ):
        j.orders.add_intent(_intent(cid, purpose, seq=seq))
        j.orders.update_intent(cid, IntentUpdate(state), now_ms=NOW)
    j.account.record_sync(
        [
            PositionView(BTC, Decimal("0.2"), Decimal(50000), Decimal(49000), "s1", NOW),
            PositionView(ETH, Decimal("-3"), Decimal(2000), None, None, NOW),
        ],
        taken_at_ms=NOW - 1000,
    )
    j.controls.set_last_tick(NOW)
    record_clock_offset(
        j,
        ClockOffset(offset_ms=-250, uncertainty_ms=3, measured_at_ms=NOW, samples=5),
        now_ms=NOW,
    )


@pytest.fixture
def journal_path(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "state" / "bot.db"
    path.parent.mkdir()
    with open_journal(path) as j:
        _fill_journal(j)
        yield path  # the writer stays open: scrapes read beside it, as in the daemon


# ----- the pure view -----


def test_journal_view_of_a_journal(journal_path: Path) -> None:
    with open_journal(journal_path, read_only=True) as j:
        counts = j.orders.intent_counts()
    view = journal_view(read_status(journal_path), counts, reduce_only_configured=False)
    assert view.mode == "normal"
    assert view.last_tick_s == NOW / 1000
    assert view.last_sync_s == (NOW - 1000) / 1000
    assert view.clock_offset_s == -0.25
    assert view.positions == {BTC: Decimal("0.2"), ETH: Decimal(-3)}
    assert view.notional == {BTC: Decimal(10000), ETH: Decimal(6000)}
    assert view.positions_without_stop == 1
    assert view.unfinished_intents == {"pending": 0, "sent": 0, "acked": 1, "unknown": 1}
    assert set(view.orders) == {(p, o) for p in PURPOSES for o in OUTCOMES}
    assert view.orders["entry", "filled"] == 2
    assert view.orders["entry", "rejected"] == 1
    assert sum(view.orders.values()) == 3  # unfinished ones are not outcomes yet


def test_reduce_only_in_the_config_shows_as_the_mode(journal_path: Path) -> None:
    report = read_status(journal_path)
    assert journal_view(report, {}, reduce_only_configured=True).mode == "reduce_only"


def test_an_empty_journal(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    open_journal(path).close()
    view = journal_view(read_status(path), {}, reduce_only_configured=False)
    assert (view.last_tick_s, view.clock_offset_s) == (None, None)
    assert (view.positions, view.positions_without_stop) == ({}, 0)
    assert set(view.unfinished_intents.values()) == {0}
    assert set(view.orders.values()) == {0}


# ----- the collector and the sink, as Prometheus reads them -----


def _registry(read_view: JournalReader | None, *, ready: bool) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(StateCollector(read_view=read_view or (lambda: None), ready=lambda: ready))
    return registry


def _reader(journal_path: Path, *, reduce_only: bool = False) -> JournalReader:
    return JournalReader(
        Config(
            instance=InstanceConfig(name="bot", state_dir=journal_path.parent),
            risk=RiskConfig(reduce_only=reduce_only),
        )
    )


def test_scrape_reads_the_journal(journal_path: Path) -> None:
    got = _scrape(_registry(_reader(journal_path), ready=True))
    assert got["trendbotd_up", ()] == 1
    assert got["trendbotd_ready", ()] == 1
    assert got["trendbotd_mode", (("mode", "normal"),)] == 1
    assert got["trendbotd_mode", (("mode", "reduce_only"),)] == 0
    assert got["trendbotd_mode", (("mode", "halted"),)] == 0
    assert got["trendbotd_last_tick_timestamp_seconds", ()] == NOW / 1000
    assert got["trendbotd_clock_offset_seconds", ()] == -0.25
    assert got["trendbotd_position_amount", (("symbol", ETH),)] == -3
    assert got["trendbotd_position_notional", (("symbol", BTC),)] == 10000
    assert got["trendbotd_positions", ()] == 2
    assert got["trendbotd_positions_without_stop", ()] == 1
    assert got["trendbotd_unfinished_intents", (("state", "acked"),)] == 1
    assert got["trendbotd_unfinished_intents", (("state", "unknown"),)] == 1
    assert got["trendbotd_unfinished_intents", (("state", "pending"),)] == 0
    assert got["trendbotd_orders_total", (("outcome", "filled"), ("purpose", "entry"))] == 2
    assert got["trendbotd_orders_total", (("outcome", "abandoned"), ("purpose", "stop"))] == 0


def test_the_scrape_follows_the_journal(journal_path: Path) -> None:
    reader = _reader(journal_path)
    registry = _registry(reader, ready=True)
    assert _scrape(registry)["trendbotd_positions_without_stop", ()] == 1
    with open_journal(journal_path) as j:  # the daemon repairs the stop
        j.account.record_sync(
            [PositionView(ETH, Decimal("-3"), Decimal(2000), Decimal(2100), "s2", NOW)],
            taken_at_ms=NOW,
        )
    got = _scrape(registry)
    assert got["trendbotd_positions_without_stop", ()] == 0
    assert ("trendbotd_position_amount", (("symbol", BTC),)) not in got  # closed
    reader.close()


def test_before_the_journal_exists_only_up_and_ready(tmp_path: Path) -> None:
    reader = _reader(tmp_path / "state" / "bot.db")
    got = _scrape(_registry(reader, ready=False))
    assert got == {("trendbotd_up", ()): 1, ("trendbotd_ready", ()): 0}


def test_an_unreadable_journal_leaves_its_metrics_out(tmp_path: Path) -> None:
    def broken() -> JournalView:
        raise JournalError("disk on fire")

    registry = CollectorRegistry()
    registry.register(StateCollector(read_view=broken, ready=lambda: True))
    assert set(_scrape(registry)) == {("trendbotd_up", ()), ("trendbotd_ready", ())}


def test_telemetry_hooks_reach_the_sink() -> None:
    registry = CollectorRegistry()
    sink = TelemetrySink(registry)
    before = _scrape(registry)
    assert math.isnan(before["trendbotd_request_weight_used", ()])
    assert math.isnan(before["trendbotd_equity", ()])
    assert before["trendbotd_alert_outbox_depth", ()] == 0
    assert before["trendbotd_alert_failures_total", ()] == 0
    assert before["trendbotd_decision_to_order_seconds_count", (("purpose", "stop"),)] == 0
    previous = telemetry.install(sink)
    try:
        telemetry.exchange_request()
        telemetry.exchange_request()
        telemetry.exchange_answer(used_weight=None)  # no header: the last value stands
        telemetry.exchange_answer(used_weight=42)
        telemetry.exchange_answer(used_weight=None)
        telemetry.exchange_error(code=-2019, http_status=400)
        telemetry.exchange_error(code=None, http_status=503)
        telemetry.exchange_error(code=None, http_status=None)
        telemetry.order_answered(purpose="stop", seconds=0.03)
        telemetry.equity(Decimal("10012.5"))
        telemetry.equity(None)  # a failed balance read keeps the last one
        telemetry.alert_outbox_depth(3)
        telemetry.alert_failed(channel="webhook")
    finally:
        telemetry.install(previous)
    telemetry.exchange_request()  # uninstalled: goes nowhere
    got = _scrape(registry)
    assert got["trendbotd_exchange_requests_total", ()] == 2
    assert got["trendbotd_request_weight_used", ()] == 42
    assert got["trendbotd_exchange_errors_total", (("code", "-2019"),)] == 1
    assert got["trendbotd_exchange_errors_total", (("code", "http_503"),)] == 1
    assert got["trendbotd_exchange_errors_total", (("code", "network"),)] == 1
    assert got["trendbotd_decision_to_order_seconds_count", (("purpose", "stop"),)] == 1
    assert (
        got["trendbotd_decision_to_order_seconds_bucket", (("le", "0.05"), ("purpose", "stop"))]
        == 1
    )
    assert (
        got["trendbotd_decision_to_order_seconds_bucket", (("le", "0.025"), ("purpose", "stop"))]
        == 0
    )
    assert got["trendbotd_equity", ()] == 10012.5
    assert got["trendbotd_alert_outbox_depth", ()] == 3
    assert got["trendbotd_alert_failures_total", ()] == 1


class _Recording(NullNotifier):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def ready(self, status: str) -> None:
        self.calls.append(f"ready {status}")

    def stopping(self, status: str) -> None:
        self.calls.append(f"stopping {status}")

    def reloading(self) -> None:
        self.calls.append("reloading")


def test_ready_follows_the_notifications() -> None:
    inner = _Recording()
    tracker = ReadyTracker(inner)
    assert not tracker.is_ready
    tracker.ready("ready: normal")
    assert tracker.is_ready
    tracker.reloading()
    assert not tracker.is_ready
    tracker.ready("reloaded")
    tracker.stopping("stopping on SIGTERM")
    assert not tracker.is_ready
    assert inner.calls == [
        "ready ready: normal",
        "reloading",
        "ready reloaded",
        "stopping stopping on SIGTERM",
    ]
    assert tracker.watchdog_interval_s is None


# ----- the server -----


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_served_on_the_configured_address_only(journal_path: Path) -> None:
    port = _free_port()
    tracker, _sink, server = serve_metrics(
        ListenAddress("127.0.0.1", port),
        read_view=_reader(journal_path),
        notifier=NullNotifier(),
        tick_interval_s=lambda: 60,
    )
    try:
        assert server.address == ListenAddress("127.0.0.1", port)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            assert reply.status == 200
            got = _parse(reply.read().decode())
        assert got["trendbotd_ready", ()] == 0
        assert got["trendbotd_positions_without_stop", ()] == 1
        assert got["trendbotd_tick_interval_seconds", ()] == 60
        assert not any(name.startswith("python_") for name, _ in got)  # own registry only
        tracker.ready("ready")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            assert _parse(reply.read().decode())["trendbotd_ready", ()] == 1
        with socket.socket() as other:  # bound to 127.0.0.1, not to every address
            assert other.connect_ex(("127.0.0.2", port)) != 0
        with pytest.raises(ConfigError, match=rf"metrics.listen 127.0.0.1:{port}: cannot listen"):
            MetricsServer(CollectorRegistry(), ListenAddress("127.0.0.1", port))
    finally:
        server.close()


# ----- the hook in the order path -----


class _SlowExchange(FakeExchange):
    """Answers an order 40 ms after it is sent."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__()
        self._clock = clock

    def create_order(self, request: OrderRequest) -> Order:
        self._clock.advance(40)
        return super().create_order(request)


def test_the_executor_reports_decision_to_order_latency(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    previous = telemetry.install(TelemetrySink(registry))
    clock = ManualClock(NOW)
    exchange = _SlowExchange(clock)
    try:
        with open_journal(tmp_path / "bot.db") as journal:
            executor = OrderExecutor(
                exchange=exchange,
                journal=journal,
                clock=clock,
                instance="bot",
                policy=ExecutorPolicy.from_config(Config()),
            )
            spec = IntentSpec(
                symbol=BTC,
                side=Side.BUY,
                type=OrderType.MARKET,
                amount=Decimal("0.010"),
                purpose=Purpose.ENTRY,
                candle_time_ms=NOW - 3_600_000,
            )
            assert executor.submit(spec).state is IntentState.FILLED
            exchange.fault("create_order", InsufficientFundsError("no margin", code=-2019))
            refused = executor.submit(dataclasses.replace(spec, seq=1))
            assert refused.state is IntentState.REJECTED
    finally:
        telemetry.install(previous)
    got = _scrape(registry)
    assert got["trendbotd_decision_to_order_seconds_count", (("purpose", "entry"),)] == 1
    assert got["trendbotd_decision_to_order_seconds_sum", (("purpose", "entry"),)] == 0.04
