"""A standalone simulated exchange in its own process (``trendbotd sim-exchange``), for
tests whose daemons share one exchange: it prints its URL and writes its keys to a file."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from support.daemon_harness import REPO, clean_env


class SimProcess:
    def __init__(self, tmp_path: Path, *options: str) -> None:
        self.creds = tmp_path / "sim-creds.toml"
        self.log = (tmp_path / "sim.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "trendbotd", "sim-exchange", "--port", "0",
             "--credentials-out", str(self.creds), *options],
            stdout=subprocess.PIPE, stderr=self.log, text=True, env=clean_env(), cwd=REPO,
        )  # fmt: skip
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline().split()
        assert first[:1] == ["base_url"], first
        self.base_url = first[1]

    def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        with urllib.request.urlopen(request, timeout=5) as reply:
            return json.loads(reply.read())

    def requests(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.control("GET", "/sim/requests")
        return result

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self.log.close()


def running_sim(tmp_path: Path, *options: str) -> Iterator[SimProcess]:
    """For a fixture: the process, stopped afterwards unless a test already stopped it."""
    sim = SimProcess(tmp_path, *options)
    yield sim
    if sim.proc.poll() is None:
        sim.stop()
