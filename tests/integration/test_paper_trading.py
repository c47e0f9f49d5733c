"""The real daemon in paper mode trades: entries get an exchange-side stop, trailing stops
move, status reads the journal while it runs, and Ctrl-C stops it cleanly."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

CONFIG = """
[instance]
name = "papertest"
runtime_dir = "{tmp}/run"
state_dir = "{tmp}/lib"

[paper]
speed = 3600
regime = "trend"
seed = 7
"""


def _wait_for(log: Path, needle: str, *, timeout_s: float, also: str = "") -> str:
    """The log once a line holds ``needle`` (and ``also``)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if any(needle in line and also in line for line in text.splitlines()):
            return text
        time.sleep(0.2)
    raise AssertionError(f"{needle!r} not seen within {timeout_s}s:\n{log.read_text()[-3000:]}")


def test_paper_daemon_enters_with_a_stop_and_stops_cleanly(tmp_path: Path) -> None:
    config = tmp_path / "paper.toml"
    config.write_text(CONFIG.format(tmp=tmp_path))
    log = tmp_path / "daemon.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "trendbotd", "run", "--paper", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for(log, "daemon.ready", timeout_s=120)
        # At speed 3600 a real millisecond is 3.6 s of exchange time: Binance's recvWindow
        # (60 s at most) lasts 17 ms of real time, and so does the entry's 60 s re-send
        # window. A starved host can overrun that (-1021), and the entry is then rightly
        # abandoned as stale; the next entry signal trades. Every filled one is protected.
        text = _wait_for(log, "entry.done", also="state=FILLED", timeout_s=180)
        entries = [line for line in text.splitlines() if "entry.done" in line]
        filled = [line for line in entries if "state=FILLED" in line]
        assert filled, entries
        assert "protected=True" in filled[0]
        assert all("state=ABANDONED" in line for line in entries if line not in filled), entries
        assert "stop.placed" in text
        status = subprocess.run(
            [sys.executable, "-m", "trendbotd", "status", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert status.returncode == 0, status.stderr
        assert "not running" not in status.stdout
        assert f"{proc.pid}" in status.stdout  # the lock holder is named
        assert "mode:      normal" in status.stdout
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    assert code == 0, log.read_text()[-3000:]
    final = log.read_text()
    assert "shutdown.policy policy=leave" in final
    assert "Traceback" not in final
