"""Helpers shared by the system tests and their fixtures (conftest.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from systest_container import Container, wait_until

DEB_INSIDE = "/root/trendbotd.deb"
UNIT = "trendbotd.service"
PHASES: list[tuple[str, float]] = []


def record(phase: str, seconds: float) -> None:
    """Time of one phase, for the summary at the end of the run."""
    PHASES.append((phase, seconds))


def install(container: Container, deb: Path) -> float:
    """``apt install`` the .deb (no network inside: every dependency is in the root).

    Returns the seconds it took. apt returns 0 even when the service fails to start
    (the maintainer scripts swallow it): callers check ``is-active`` themselves.
    """
    container.path(DEB_INSIDE).write_bytes(deb.read_bytes())
    start = time.monotonic()
    container.run(
        "apt-get", "install", "-y", "-q", "--no-install-recommends", DEB_INSIDE, timeout=300
    )
    seconds = time.monotonic() - start
    record("apt install", seconds)
    return seconds


def wait_active(container: Container, unit: str = UNIT, *, timeout: float = 60) -> None:
    def state() -> str:
        s = container.is_active(unit)
        if s in ("failed", "inactive"):
            raise AssertionError(f"{unit} is {s}:\n{_unit_log(container, unit)}")
        return s if s == "active" else ""

    wait_until(state, timeout=timeout, what=f"{unit} active")


def _unit_log(container: Container, unit: str) -> str:
    result = container.run("journalctl", "--no-pager", "-u", unit, "-n", "40", check=False)
    return result.stdout


@dataclass
class Service:
    """What a test changed inside ``installed``, undone afterwards."""

    container: Container
    files: list[str] = field(default_factory=list)
    units: list[str] = field(default_factory=list)
    originals: dict[str, str] = field(default_factory=dict)

    def write(self, inside: str, text: str, *, mode: int = 0o644) -> None:
        self.files.append(inside)
        self.container.write(inside, text, mode=mode)

    def config(self, inside: str, text: str) -> None:
        """Replace a config file; the original (if any) comes back afterwards."""
        c = self.container
        if c.exists(inside) and inside not in self.originals:
            self.originals[inside] = c.path(inside).read_text()
        elif not c.exists(inside):
            self.files.append(inside)
        c.write(inside, text)

    def drop_in(self, unit: str, text: str, *, name: str = "50-test.conf") -> None:
        self.write(f"/etc/systemd/system/{unit}.d/{name}", "[Service]\n" + text)
        self.container.run("systemctl", "daemon-reload")

    def restore(self) -> None:
        c = self.container
        for unit in self.units:
            c.run("systemctl", "stop", unit, check=False)
        for inside in self.files:
            c.run("rm", "-rf", inside, check=False)
        for inside, text in self.originals.items():
            c.write(inside, text)
        c.run("systemctl", "daemon-reload")
        c.run("systemctl", "reset-failed", check=False)
        if self.files or self.originals or c.is_active(UNIT) != "active":
            c.run("systemctl", "restart", UNIT, check=False, timeout=180)
            wait_active(c)
