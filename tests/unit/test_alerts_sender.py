"""One channel's sender over a real outbox, with a recording channel and a clock the test
drives: order, coalescing, rate limit, back-off after failures, and the per-channel lock."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pytest

from trendbotd.alerts.channels import AlertMessage, DeliveryError
from trendbotd.alerts.events import Severity
from trendbotd.alerts.outbox import ChannelLock, Outbox, outbox_path
from trendbotd.alerts.policy import RateLimit
from trendbotd.alerts.sender import ChannelSender, Outcome, SenderSettings
from trendbotd.alerts.sink import OutboxAlertSink
from trendbotd.core import telemetry


@dataclass
class RecordingChannel:
    name: str = "hook"
    down: bool = False
    messages: list[AlertMessage] = field(default_factory=list)

    def send(self, message: AlertMessage) -> None:
        if self.down:
            raise DeliveryError("HTTP 500")
        self.messages.append(message)


@dataclass
class Clock:
    now_ms: int = 1_000_000

    def __call__(self) -> int:
        return self.now_ms


Parts = tuple[Outbox, RecordingChannel, Clock, ChannelSender, OutboxAlertSink]


@pytest.fixture
def parts(tmp_path: Path) -> Parts:
    outbox = Outbox(outbox_path(tmp_path, "t"), max_alerts=100)
    channel, clock = RecordingChannel(), Clock()
    settings = SenderSettings(
        instance="t",
        coalesce_window_ms=60_000,
        rate_limit=RateLimit(max_messages=2, window_ms=10_000),
        retry_base_s=1.0,
        retry_max_s=8.0,
    )
    sender = ChannelSender(outbox=outbox, channel=channel, settings=settings, clock_ms=clock)
    sink = OutboxAlertSink(
        outbox=outbox,
        channels=[("hook", Severity.INFO)],
        wake=lambda: None,
        clock_ms=clock,
    )
    return outbox, channel, clock, sender, sink


def test_in_order_then_rate_limited_then_coalesced(parts: Parts) -> None:
    outbox, channel, clock, sender, sink = parts
    sink.emit("daemon.started")
    sink.emit("exchange.unreachable", key="bn", minutes=0)
    assert sender.step().outcome is Outcome.SENT
    assert sender.step().outcome is Outcome.SENT
    for minute in range(1, 4):
        sink.emit("exchange.unreachable", key="bn", minutes=minute)
    step = sender.step()
    assert step.outcome is Outcome.WAITING and step.wait_s == pytest.approx(10.0)
    clock.now_ms += 10_000
    assert sender.step().outcome is Outcome.SENT
    assert sender.step().outcome is Outcome.IDLE
    assert [(m.event, m.count) for m in channel.messages] == [
        ("daemon.started", 1),
        ("exchange.unreachable", 1),
        ("exchange.unreachable", 3),  # the three held back by the rate limit, as one
    ]
    assert channel.messages[2].fields == {"minutes": "1"}
    assert outbox.depth() == 0


def test_failures_back_off_and_nothing_is_lost(parts: Parts) -> None:
    outbox, channel, clock, sender, sink = parts
    channel.down = True
    sink.emit("daemon.started")
    waits = []
    for _ in range(5):
        step = sender.step()
        assert step.outcome is Outcome.FAILED
        waits.append(step.wait_s)
        assert sender.step().outcome is Outcome.WAITING  # too early for another try
        clock.now_ms += int(step.wait_s * 1000)
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0]
    channel.down = False
    assert sender.step().outcome is Outcome.SENT
    assert [m.event for m in channel.messages] == ["daemon.started"]
    assert outbox.depth() == 0


def test_another_holder_of_the_channel_lock_keeps_the_sender_off(
    parts: Parts,
) -> None:
    outbox, channel, _, sender, sink = parts
    sink.emit("daemon.started")
    other = ChannelLock(outbox.path, "hook")  # as `trendbotd alert` would hold it
    assert other.try_acquire()
    assert sender.step().outcome is Outcome.BUSY
    other.release()
    assert sender.step().outcome is Outcome.SENT
    assert len(channel.messages) == 1


@dataclass
class RecordingTelemetry:
    depths: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def exchange_request(self) -> None: ...
    def exchange_answer(self, *, used_weight: int | None) -> None: ...
    def exchange_error(self, *, code: str) -> None: ...
    def order_answered(self, *, purpose: str, seconds: float) -> None: ...
    def equity(self, total: Decimal) -> None: ...

    def alert_outbox_depth(self, depth: int) -> None:
        self.depths.append(depth)

    def alert_failed(self, *, channel: str) -> None:
        self.failures.append(channel)


def test_failures_and_outbox_depth_reach_the_metrics(parts: Parts) -> None:
    _, channel, clock, sender, sink = parts
    recorded = RecordingTelemetry()
    previous = telemetry.install(recorded)
    try:
        channel.down = True
        sink.emit("daemon.started")
        step = sender.step()
        assert step.outcome is Outcome.FAILED
        clock.now_ms += int(step.wait_s * 1000)
        channel.down = False
        assert sender.step().outcome is Outcome.SENT
    finally:
        telemetry.install(previous)
    assert recorded.failures == ["hook"]
    assert recorded.depths == [1, 0]  # still waiting after the failure, gone once sent
