"""Fatal trouble that starts while the real paper daemon runs, at a fake webhook: the API
key revoked (Binance answers -2015 to every signed request) and the journal's disk full.
Each ends the daemon with its documented exit code after one critical alert, and the
alert names the cause; at startup both are covered by test_trading_alerts."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from alert_daemon import (
    alert_config,
    assert_no_secret,
    events,
    free_port,
    one,
    sim_post,
    start_alerting,
)
from alert_receivers import Receiver, serve
from support.daemon_harness import DaemonFactory, NotifyListener

from trendbotd.exitcodes import ExitCode

# Binance's answer to a signed request with a revoked key, on every signed path the
# daemon's tick reads (the public candles path keeps answering, as it does live).
REVOKED = {"kind": "error", "binance_code": -2015, "http_status": 401, "times": None,
           "msg": "Invalid API-key, IP, or permissions for action."}  # fmt: skip
SIGNED_PATHS = ("/fapi/v1/open*", "/fapi/v3/*", "/fapi/v2/*")


@pytest.fixture
def webhook() -> Iterator[Receiver]:
    with serve(Receiver()) as receiver:
        yield receiver


def _paper_config(tmp_path: Path, webhook: Receiver, sim_port: int) -> Path:
    config = alert_config(tmp_path, webhook_port=webhook.port)
    config.write_text(config.read_text() + f"\n[paper]\nport = {sim_port}\n")
    return config


def test_a_key_revoked_while_running_is_one_critical_alert_and_exit_77(
    tmp_path: Path, daemon: DaemonFactory, notify_listener: NotifyListener, webhook: Receiver
) -> None:
    sim_port = free_port()
    config = _paper_config(tmp_path, webhook, sim_port)
    handle = start_alerting(daemon, config, notify_listener)
    webhook.wait_for(lambda b: "daemon.ready" in events(b))

    for path in SIGNED_PATHS:
        sim_post(sim_port, "/sim/faults", {**REVOKED, "path": path})
    assert handle.wait(timeout=60) == ExitCode.NO_PERMISSION
    bodies = webhook.wait_for(lambda b: "daemon.failed" in events(b))
    rejected = one(bodies, "credentials.rejected")
    assert rejected["severity"] == "critical"
    assert "-2015" in str(rejected["fields"]), rejected
    failed = one(bodies, "daemon.failed")
    assert failed["fields"]["exit_code"] == str(int(ExitCode.NO_PERMISSION))
    assert events(bodies).index("credentials.rejected") < events(bodies).index("daemon.failed")
    _, err = handle.output()
    assert_no_secret(err, *(str(b) for b in bodies))


@contextlib.contextmanager
def _small_disk(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path``: a disk that can be filled in a test."""
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(directory: Path) -> None:
    """Write until the disk says it is full."""
    with (directory / "filler").open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
                os.fsync(out.fileno())
        except OSError as e:
            assert e.errno == errno.ENOSPC, e


def test_a_full_disk_under_the_journal_is_one_critical_alert_and_a_clean_exit(
    tmp_path: Path, daemon: DaemonFactory, notify_listener: NotifyListener, webhook: Receiver
) -> None:
    sim_port = free_port()
    config = _paper_config(tmp_path, webhook, sim_port)
    with _small_disk(tmp_path / "state", "8m") as state:
        handle = start_alerting(daemon, config, notify_listener)
        webhook.wait_for(lambda b: "daemon.ready" in events(b))
        _fill(state)
        code = handle.wait(timeout=60)
        _, err = handle.output()
        assert code == ExitCode.IO_ERROR, err[-3000:]
    bodies = webhook.wait_for(lambda b: "daemon.failed" in events(b))
    failure = one(bodies, "journal.error")
    assert failure["severity"] == "critical"
    assert "full" in str(failure["fields"]), failure
    assert_no_secret(err, *(str(b) for b in bodies))
