"""``trendbotd status --json`` against a real paper daemon and its real journal: the
document parses, carries the documented keys (pinned here: changing them needs a new
``schema``), and exits like the text report (0 running, 3 not running, report printed)."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

from support.daemon_harness import DaemonFactory, NotifyListener, clean_env, write_config
from support.status_keys import HOLDER_KEYS, TOP_KEYS

from trendbotd.exitcodes import ExitCode
from trendbotd.journal.operator_requests import FlattenRequest, finish_flatten, request_flatten
from trendbotd.journal.store import open_journal


def _status_json(daemon: DaemonFactory, config: Path) -> tuple[int, dict[str, Any]]:
    done = daemon.run(["status", "--json", "--config", str(config)])
    assert done.stderr == "", done.stderr
    document = json.loads(done.stdout)
    assert isinstance(document, dict)
    assert set(document) == TOP_KEYS
    assert document["schema"] == 1
    assert document["instance"] == "itest"
    return done.returncode, document


def test_status_json_before_during_and_after_a_run(
    tmp_path: Path, daemon: DaemonFactory, notify_listener: NotifyListener
) -> None:
    config = write_config(tmp_path)

    code, never = _status_json(daemon, config)
    assert code == ExitCode.NOT_RUNNING
    assert (never["running"], never["holder"], never["mode"]) == (False, None, None)
    assert never["journal"]["exists"] is False

    handle = daemon.start(
        ["run", "--foreground", "--paper", "--config", str(config)],
        env=clean_env(NOTIFY_SOCKET=notify_listener.path),
    )
    ready_at, _ = notify_listener.wait_key("READY", "1", timeout=60, proc=handle.proc)
    # a tick after READY: the loop has journalled its first tick
    notify_listener.wait_for(
        lambda m: m.fields.get("STATUS", "").startswith("normal | "),
        timeout=30,
        after=ready_at + 1,
        proc=handle.proc,
    )
    code, running = _status_json(daemon, config)
    assert code == ExitCode.OK
    assert running["running"] is True
    holder = running["holder"]
    assert set(holder) == HOLDER_KEYS
    assert holder["pid"] == handle.pid
    assert f"PID {handle.pid}" in holder["description"]
    assert holder["rss_bytes"] > 10 * 2**20  # python + ccxt: tens of MiB
    assert holder["cpu_s"] > 0 and holder["threads"] >= 1 and holder["uptime_s"] >= 0
    assert holder["resources_unknown"] is None
    assert running["lock"]["path"] == str(tmp_path / "run" / "itest.pid")
    assert running["journal"] == {
        "path": str(tmp_path / "state" / "itest.db"),
        "exists": True,
        "schema_version": running["journal"]["schema_version"],
    }
    assert isinstance(running["journal"]["schema_version"], int)
    assert (running["mode"], running["mode_reason"]) == ("normal", "")
    assert isinstance(running["last_sync_ms"], int) and isinstance(running["last_tick_ms"], int)
    clock = running["clock"]
    assert clock is not None and abs(clock["offset_ms"]) <= 100  # same host: no real offset
    assert clock["samples"] == 5 and clock["round_trip_ms"] >= 0
    assert running["positions"] == [] and running["open_orders"] == []
    assert running["flatten"] == {"pending": None, "last_done": None}

    handle.signal(signal.SIGTERM)
    assert handle.wait(timeout=30) == 0
    code, stopped = _status_json(daemon, config)
    assert code == ExitCode.NOT_RUNNING  # and the report is still there
    assert (stopped["running"], stopped["holder"]) == (False, None)
    assert stopped["last_tick_ms"] >= running["last_tick_ms"]
    assert stopped["clock"] == clock or stopped["clock"]["measured_at_ms"] > clock["measured_at_ms"]

    # the operator's flatten, journalled as ``trendbotd flatten`` does: pending, then done
    request = FlattenRequest("7-1", ("BTC/USDT:USDT",), "alice", "news", stopped["last_tick_ms"])
    with open_journal(tmp_path / "state" / "itest.db") as journal:
        request_flatten(journal, request)
    _, pending = _status_json(daemon, config)
    assert pending["flatten"] == {
        "pending": {
            "id": "7-1",
            "symbols": ["BTC/USDT:USDT"],
            "reason": "flatten BTC/USDT:USDT requested by alice: news",
            "at_ms": request.at_ms,
        },
        "last_done": None,
    }
    with open_journal(tmp_path / "state" / "itest.db") as journal:
        finish_flatten(journal, request, "flat: 0 position(s) closed", now_ms=request.at_ms + 1)
    _, done = _status_json(daemon, config)
    assert done["flatten"] == {
        "pending": None,
        "last_done": {
            "id": "7-1",
            "outcome": "flat: 0 position(s) closed",
            "at_ms": request.at_ms + 1,
        },
    }
    text = daemon.run(["status", "--config", str(config)]).stdout
    assert "flatten:   last one flat: 0 position(s) closed" in text
    assert "  last done: request 7-1 at " in text
