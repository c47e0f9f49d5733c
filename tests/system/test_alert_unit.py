"""Alerts that outlive the process, in a real systemd (Debian 12, systemd 252).

A fake webhook runs inside the container as a transient unit on 127.0.0.1 and writes each
POSTed document as one line of a file. The channel's URL is a systemd credential of both
units (the daemon's and the alert unit's), as an operator would set it up.
- A unit that fails for good (a bad config: exit 78, which stops the restart loop)
  starts trendbotd-alert@trendbotd.service through OnFailure=, whose report arrives.
- A SIGKILL that systemd restarts gives exactly one alert: the restarted daemon's
  "restarted after an unclean exit" (systemd 252 does not fire OnFailure= between
  automatic restarts; where it does, both name the failed run and the outbox keeps one).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from systest_container import Container, wait_until
from systest_support import UNIT, Service, wait_active

pytestmark = pytest.mark.system

HOOK_UNIT = "trendbotd-test-webhook.service"
HOOK_PORT = 18099
RECEIVED = "/root/webhook.jsonl"
CREDSTORE = "/etc/credstore/trendbotd.alert-hook"
CONFIG = "/etc/trendbotd/trendbotd.toml"
ALERT_TEMPLATE = "trendbotd-alert@.service"
PYTHON = "/usr/lib/trendbotd/bin/python3"

_SERVER = f"""
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with open({RECEIVED!r}, "ab") as f:
            f.write(body.replace(b"\\n", b" ") + b"\\n")
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{{}}")
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", {HOOK_PORT}), H).serve_forever()
"""

ALERTS = """
[exchange]
paper = true

[alerts]
retry_base_s = 0.5
retry_max_s = 2
coalesce_window_s = 0

[alerts.channels.hook]
kind = "webhook"
min_severity = "info"
secret_name = "alert-hook"
"""


def _setup(svc: Service, config: str) -> None:
    c = svc.container
    svc.units.append(HOOK_UNIT)
    svc.files.append(RECEIVED)
    c.run("systemd-run", f"--unit={HOOK_UNIT}", "--collect", PYTHON, "-c", _SERVER)
    svc.write(CREDSTORE, f'url = "http://127.0.0.1:{HOOK_PORT}/hook"\n', mode=0o600)
    drop_in = f"LoadCredential=alert-hook:{CREDSTORE}\n"
    svc.write(f"/etc/systemd/system/{ALERT_TEMPLATE}.d/50-test.conf", "[Service]\n" + drop_in)
    svc.drop_in(UNIT, drop_in, name="50-alert.conf")
    svc.config(CONFIG, config)


def _received(c: Container) -> list[dict[str, Any]]:
    if not c.exists(RECEIVED):
        return []
    return [json.loads(line) for line in c.path(RECEIVED).read_text().splitlines() if line]


def _events(c: Container) -> list[str]:
    return [str(b["event"]) for b in _received(c)]


def test_a_unit_that_fails_for_good_is_reported_by_the_alert_unit(svc: Service) -> None:
    c = svc.container
    _setup(svc, ALERTS + "\n[risk]\nmax_leverage = 500\n")
    c.run("systemctl", "restart", UNIT, check=False, timeout=120)
    wait_until(lambda: c.is_active(UNIT) == "failed", timeout=60, what=f"{UNIT} failed")
    assert c.prop(UNIT, "ExecMainStatus") == "78"
    bodies = wait_until(
        lambda: [b for b in _received(c) if b["event"] == "unit.failed"],
        timeout=60,
        what="the OnFailure= alert at the webhook",
    )
    (body,) = bodies
    assert body["severity"] == "critical"
    assert body["fields"]["unit"] == UNIT
    assert body["fields"]["exit"] == "exited/78"
    assert "max_leverage" in body["text"]  # the last log lines say why
    assert body["id"] == f"failed-run-{c.prop(UNIT, 'InvocationID')}"


def test_a_sigkill_that_systemd_restarts_gives_exactly_one_alert(svc: Service) -> None:
    c = svc.container
    _setup(svc, ALERTS)
    c.run("systemctl", "restart", UNIT, timeout=120)
    wait_active(c)
    wait_until(lambda: "daemon.ready" in _events(c), timeout=60, what="daemon.ready alert")
    wait_until(lambda: _pending(c) == 0, timeout=30, what="the outbox bookkeeping")
    restarts = int(c.prop(UNIT, "NRestarts"))
    c.run("systemctl", "kill", "--signal=KILL", UNIT)
    wait_until(
        lambda: int(c.prop(UNIT, "NRestarts")) > restarts and c.is_active(UNIT) == "active",
        timeout=60,
        what="the restart after SIGKILL",
    )
    wait_until(lambda: _events(c).count("daemon.ready") == 2, timeout=60, what="the second ready")
    wait_until(lambda: _pending(c) == 0, timeout=30, what="the outbox drained")
    # where OnFailure= fires between restarts, its alert unit must have finished too
    wait_until(
        lambda: c.is_active(f"trendbotd-alert@{UNIT}") != "activating",
        timeout=60,
        what="no alert unit running",
    )
    reports = [e for e in _events(c) if e in ("daemon.restarted_unclean", "unit.failed")]
    assert reports == ["daemon.restarted_unclean"], _events(c)
    # a critical alert is also in the journal at priority crit
    wait_until(
        lambda: any(
            "alert.daemon.restarted_unclean" in line
            for line in c.run(
                "journalctl", "-p", "crit", "-u", UNIT, "-o", "cat"
            ).stdout.splitlines()
        ),
        timeout=30,
        what="the critical alert in `journalctl -p crit`",
    )


def _pending(c: Container) -> int:
    probe = (
        "import sqlite3; c = sqlite3.connect('file:/var/lib/trendbotd/trendbotd.alerts.db"
        "?mode=ro', uri=True); print(c.execute(\"SELECT COUNT(*) FROM deliveries "
        "WHERE state = 'pending'\").fetchone()[0])"
    )
    return int(c.run(PYTHON, "-c", probe).stdout.strip())
