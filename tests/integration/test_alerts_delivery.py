"""The alert side path in-process against a local receiver over real HTTP: ``emit`` stays
fast while the channel hangs (figures printed), repeats coalesce under the rate limit,
and everything queued during the hang arrives once when the channel answers again."""

from __future__ import annotations

import stat
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alert_receivers import Receiver, serve
from support.daemon_harness import wait_until

from trendbotd.alerts.wiring import Alerts, open_alerts
from trendbotd.config import AlertChannelConfig, AlertsConfig, Config, InstanceConfig


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serve(Receiver()) as r:
        yield r


def _alerts(tmp_path: Path, port: int, **settings: float) -> Alerts:
    secret = tmp_path / "hook.secret"
    secret.write_text(f'url = "http://127.0.0.1:{port}/hook/latency-secret-77"\n')
    secret.chmod(stat.S_IRUSR | stat.S_IWUSR)
    config = Config(
        instance=InstanceConfig(name="lat", state_dir=tmp_path / "state"),
        alerts=AlertsConfig(
            channels=(
                AlertChannelConfig(
                    name="hook", kind="webhook", min_severity="info", secret_file=secret
                ),
            ),
            **settings,  # type: ignore[arg-type]
        ),
    )
    alerts = open_alerts(config, env={})
    alerts.start_senders()
    return alerts


def test_emit_stays_fast_while_the_channel_hangs(tmp_path: Path, receiver: Receiver) -> None:
    receiver.set_mode("hang")
    alerts = _alerts(
        tmp_path,
        receiver.port,
        send_timeout_s=30.0,
        coalesce_window_s=0.0,
        rate_limit=1000,
        retry_base_s=0.1,
        retry_max_s=0.2,
    )
    try:
        alerts.sink.emit("daemon.started")
        assert wait_until(
            lambda: receiver.attempts == 1, timeout=10
        )  # the sender is stuck in its request
        latencies_ms: list[float] = []
        for i in range(300):
            start = time.perf_counter()
            alerts.sink.emit("exchange.unreachable", key=f"n{i}", attempt=i)
            latencies_ms.append((time.perf_counter() - start) * 1000)
        median = statistics.median(latencies_ms)
        worst = max(latencies_ms)
        p99 = sorted(latencies_ms)[int(len(latencies_ms) * 0.99) - 1]
        print(
            f"\nalert emit latency while the channel hangs (n=300): "
            f"median {median:.2f} ms, p99 {p99:.2f} ms, max {worst:.2f} ms"
        )
        assert median < 10.0, latencies_ms
        assert worst < 250.0, latencies_ms
        receiver.set_mode("ok")
        bodies = receiver.wait_for(lambda b: len(b) >= 301, timeout=120)  # a busy host
        ids = [i for b in bodies for i in b["ids"]]
        assert len(ids) == len(set(ids)) == 301  # every alert once
        assert [b["fields"].get("attempt") for b in bodies[1:]] == [str(i) for i in range(300)]
    finally:
        alerts.close()


def test_a_storm_of_repeats_becomes_one_message_with_a_count(
    tmp_path: Path, receiver: Receiver
) -> None:
    alerts = _alerts(tmp_path, receiver.port, rate_limit=1, rate_window_s=2.0)
    try:
        alerts.sink.emit("exchange.unreachable", key="binanceusdm", minutes=1)
        receiver.wait_for(lambda b: len(b) == 1)
        for minute in range(2, 12):  # held back by the rate limit, then coalesced
            alerts.sink.emit("exchange.unreachable", key="binanceusdm", minutes=minute)
        alerts.sink.emit("exchange.back", key="binanceusdm")
        bodies = receiver.wait_for(lambda b: len(b) >= 3, timeout=10)
    finally:
        alerts.close()
    assert [(b["event"], b["count"]) for b in bodies] == [
        ("exchange.unreachable", 1),
        ("exchange.unreachable", 10),
        ("exchange.back", 1),
    ]
    assert "(x10 within" in bodies[1]["text"]
    assert bodies[1]["severity"] == "error"
