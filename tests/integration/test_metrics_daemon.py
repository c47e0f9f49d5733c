"""/metrics of the real daemon in paper mode: the real process, real ccxt over HTTP to
the simulated exchange, the real journal, scraped over HTTP and read with Prometheus'
text parser; and a port already taken stops the start with exit 78."""

from __future__ import annotations

import json
import signal
import socket
import time
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from support.daemon_harness import (
    DaemonFactory,
    NotifyListener,
    clean_env,
    wait_until,
    write_config,
)

from trendbotd.exitcodes import ExitCode

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

EXPECTED_FAMILIES = {
    "trendbotd_up",
    "trendbotd_ready",
    "trendbotd_mode",
    "trendbotd_last_tick_timestamp_seconds",
    "trendbotd_last_sync_timestamp_seconds",
    "trendbotd_clock_offset_seconds",
    "trendbotd_equity",
    "trendbotd_position_amount",
    "trendbotd_position_notional",
    "trendbotd_positions",
    "trendbotd_positions_without_stop",
    "trendbotd_unfinished_intents",
    "trendbotd_orders",
    "trendbotd_exchange_requests",
    "trendbotd_exchange_errors",
    "trendbotd_request_weight_used",
    "trendbotd_decision_to_order_seconds",
    "trendbotd_alert_outbox_depth",
    "trendbotd_alert_failures",
    "trendbotd_tick_interval_seconds",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(port: int) -> tuple[set[str], Samples]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        assert reply.status == 200
        text = reply.read().decode()
    families = list(text_string_to_metric_families(text))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples
    }
    return {f.name for f in families}, samples


def _metrics_extra(port: int, sim_port: int) -> str:
    return f'\n[metrics]\nlisten = "127.0.0.1:{port}"\n\n[paper]\nport = {sim_port}\n'


def _paper_config_with_metrics(tmp_path: Path) -> tuple[Path, int, int]:
    """A paper config with [metrics] on a free port; its path, that port and the simulator's."""
    port, sim_port = _free_port(), _free_port()
    return write_config(tmp_path, _metrics_extra(port, sim_port)), port, sim_port


def test_metrics_of_a_paper_run(
    tmp_path: Path, daemon: DaemonFactory, notify_listener: NotifyListener
) -> None:
    config, port, sim_port = _paper_config_with_metrics(tmp_path)
    handle = daemon.start(
        ["run", "--foreground", "--paper", "--config", str(config)],
        env=clean_env(NOTIFY_SOCKET=notify_listener.path),
    )
    ready_at, _ = notify_listener.wait_key("READY", "1", timeout=60, proc=handle.proc)
    notify_listener.wait_for(  # a tick after READY: the loop has journalled it
        lambda m: m.fields.get("STATUS", "").startswith("normal | "),
        timeout=30,
        after=ready_at + 1,
        proc=handle.proc,
    )
    families, got = _scrape(port)
    assert families >= EXPECTED_FAMILIES, EXPECTED_FAMILIES - families
    assert got["trendbotd_up", ()] == 1
    assert got["trendbotd_ready", ()] == 1
    assert got["trendbotd_mode", (("mode", "normal"),)] == 1
    assert got["trendbotd_mode", (("mode", "halted"),)] == 0
    assert got["trendbotd_positions_without_stop", ()] == 0
    assert 0 <= time.time() - got["trendbotd_last_tick_timestamp_seconds", ()] < 30
    assert abs(got["trendbotd_clock_offset_seconds", ()]) < 0.1  # same host
    assert got["trendbotd_equity", ()] == 10000  # the paper account's start balance
    assert got["trendbotd_exchange_requests_total", ()] > 0
    assert got["trendbotd_request_weight_used", ()] > 0  # the simulator reports it
    assert got["trendbotd_unfinished_intents", (("state", "unknown"),)] == 0
    assert got["trendbotd_tick_interval_seconds", ()] == 0.2
    assert got["trendbotd_orders_total", (("outcome", "filled"), ("purpose", "entry"))] >= 0
    assert got["trendbotd_alert_outbox_depth", ()] == 0
    assert got["trendbotd_alert_failures_total", ()] == 0

    # the counters move with the daemon: each tick talks to the exchange
    requests = got["trendbotd_exchange_requests_total", ()]
    assert wait_until(
        lambda: _scrape(port)[1]["trendbotd_exchange_requests_total", ()] > requests, timeout=30
    )
    # one read answered 503 (retried by the adapter): counted by its status
    assert ("trendbotd_exchange_errors_total", (("code", "http_503"),)) not in got
    fault = {"method": "GET", "path": "/fapi/*", "kind": "http_status", "http_status": 503}
    _control(f"http://127.0.0.1:{sim_port}", "POST", "/sim/faults", fault)
    assert wait_until(
        lambda: (
            _scrape(port)[1].get(("trendbotd_exchange_errors_total", (("code", "http_503"),))) == 1
        ),
        timeout=30,
    )
    # a reload (SIGHUP) that sets risk.reduce_only: the mode follows the settings in force
    write_config(tmp_path, _metrics_extra(port, sim_port) + "\n[risk]\nreduce_only = true\n")
    handle.signal(signal.SIGHUP)
    assert wait_until(
        lambda: _scrape(port)[1]["trendbotd_mode", (("mode", "reduce_only"),)] == 1, timeout=30
    )
    assert wait_until(lambda: _scrape(port)[1]["trendbotd_ready", ()] == 1, timeout=10)
    handle.signal(signal.SIGTERM)
    assert handle.wait(timeout=30) == 0


def _control(base_url: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base_url + path, data=data, method=method)
    with urllib.request.urlopen(request, timeout=5) as reply:
        return json.loads(reply.read())


def test_a_position_without_a_stop_shows_until_it_is_gone(
    tmp_path: Path, daemon: DaemonFactory, notify_listener: NotifyListener
) -> None:
    """A position opened behind the daemon's back while the exchange refuses every stop
    (the sync's emergency stop cannot be placed) is counted at the next sync, and the
    count drops once it is closed."""
    config, port, sim_port = _paper_config_with_metrics(tmp_path)
    handle = daemon.start(
        ["run", "--foreground", "--paper", "--config", str(config)],
        env=clean_env(NOTIFY_SOCKET=notify_listener.path),
    )
    notify_listener.wait_key("READY", "1", timeout=60, proc=handle.proc)
    sim = f"http://127.0.0.1:{sim_port}"
    price = _control(sim, "GET", "/sim/state")["prices"]["BTCUSDT"]

    def gauge(name: str, labels: tuple[tuple[str, str], ...] = ()) -> float:
        assert handle.proc.poll() is None, handle.output()
        return _scrape(port)[1].get((name, labels), -1.0)

    assert gauge("trendbotd_positions_without_stop") == 0
    refuse_stops = {
        "method": "POST",
        "path": "/fapi/v1/algoOrder",
        "kind": "error",
        "binance_code": -4045,
        "msg": "Reach max stop order limit.",
        "times": None,
    }
    _control(sim, "POST", "/sim/faults", refuse_stops)
    _control(sim, "POST", "/sim/position",
             {"symbol": "BTCUSDT", "amount": "0.01", "entry_price": price})  # fmt: skip
    assert wait_until(lambda: gauge("trendbotd_positions_without_stop") == 1, timeout=30)
    assert gauge("trendbotd_position_amount", (("symbol", "BTC/USDT:USDT"),)) == 0.01
    assert gauge("trendbotd_mode", (("mode", "reduce_only"),)) == 1  # a position it cannot own
    _control(sim, "POST", "/sim/position",
             {"symbol": "BTCUSDT", "amount": "0", "entry_price": price})  # fmt: skip
    assert wait_until(lambda: gauge("trendbotd_positions_without_stop") == 0, timeout=30)
    assert gauge("trendbotd_positions") == 0
    handle.signal(signal.SIGTERM)
    assert handle.wait(timeout=30) == 0


def test_a_taken_port_is_a_config_error(tmp_path: Path, daemon: DaemonFactory) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path, f'\n[metrics]\nlisten = "127.0.0.1:{port}"\n')
        done = daemon.run(["run", "--foreground", "--paper", "--config", str(config)])
    assert done.returncode == ExitCode.CONFIG_ERROR
    assert f"metrics.listen 127.0.0.1:{port}: cannot listen: Address already in use" in (
        done.stderr
    )
