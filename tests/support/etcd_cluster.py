"""A real 3-member etcd cluster on 127.0.0.1 with free ports, for the cluster tests.

Debian's etcd-server (packaging/install-build-deps.sh installs it). Members are separate
processes, so a test can stop some (SIGSTOP: a member that hangs, as a partition looks
from a client) and let them go on, or kill them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


def free_ports(count: int) -> list[int]:
    sockets = []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@dataclass
class Member:
    name: str
    client_url: str
    peer_url: str
    data_dir: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None


class EtcdCluster:
    def __init__(self, base: Path, size: int = 3) -> None:
        binary = shutil.which("etcd")
        if binary is None:
            if os.environ.get("CI"):
                pytest.fail("etcd is not installed (packaging/install-build-deps.sh installs it)")
            pytest.skip("etcd is not installed (run packaging/install-build-deps.sh as root)")
        self.binary = binary
        ports = free_ports(2 * size)
        self.members = [
            Member(
                name=f"m{i}",
                client_url=f"http://127.0.0.1:{ports[2 * i]}",
                peer_url=f"http://127.0.0.1:{ports[2 * i + 1]}",
                data_dir=base / f"m{i}",
                log=base / f"m{i}.log",
            )
            for i in range(size)
        ]
        self.initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url for m in self.members]

    def start(self, timeout: float = 30) -> None:
        for m in self.members:
            self._spawn(m)
        self.wait_healthy(timeout)

    def _spawn(self, m: Member) -> None:
        args = [
            self.binary,
            "--name", m.name,
            "--data-dir", str(m.data_dir),
            "--listen-client-urls", m.client_url,
            "--advertise-client-urls", m.client_url,
            "--listen-peer-urls", m.peer_url,
            "--initial-advertise-peer-urls", m.peer_url,
            "--initial-cluster-token", "trendbotd-test",
            "--initial-cluster-state", "new",
            "--initial-cluster", self.initial,
            "--log-level", "warn",
        ]  # fmt: skip
        with m.log.open("ab") as log:
            m.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)

    def healthy(self, m: Member) -> bool:
        try:
            with urllib.request.urlopen(m.client_url + "/health", timeout=1) as answer:
                return bool(json.load(answer).get("health") == "true")
        except (OSError, ValueError):
            return False

    def wait_healthy(self, timeout: float, members: list[Member] | None = None) -> None:
        deadline = time.monotonic() + timeout
        waiting = list(members or self.members)
        while waiting and time.monotonic() < deadline:
            waiting = [m for m in waiting if not self.healthy(m)]
            if waiting:
                time.sleep(0.1)
        if waiting:
            logs = "\n".join(m.log.read_text(errors="replace")[-2000:] for m in waiting)
            raise AssertionError(f"etcd members not healthy: {[m.name for m in waiting]}\n{logs}")

    def pause(self, m: Member) -> None:
        assert m.proc is not None
        m.proc.send_signal(signal.SIGSTOP)

    def resume(self, m: Member) -> None:
        assert m.proc is not None
        m.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        for m in self.members:
            if m.proc is not None and m.proc.poll() is None:
                m.proc.send_signal(signal.SIGCONT)
                m.proc.kill()
                m.proc.wait(10)


def running_cluster(base: Path) -> Iterator[EtcdCluster]:
    """A started cluster under ``base``, stopped at the end: the body of a fixture."""
    cluster = EtcdCluster(base)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
