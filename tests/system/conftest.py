"""Fixtures of the system tests: the built .deb installed in a real systemd (nspawn).

Session: the .deb (rebuilt only when stale) and the Debian root (cached). Per test module:
one booted container with the package installed and trendbotd.service active
(``installed``). Per test: ``svc``, which undoes what the test changed (configs,
drop-ins, transient units) and leaves trendbotd.service active again. Tests that need a
machine of their own (package lifecycle) use ``fresh`` (booted, nothing installed).

Every phase is timed; the summary is printed at the end of the run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from systest_build import Built, ensure_deb, ensure_root
from systest_container import Container, remove_stale_cgroups, why_cannot_boot
from systest_support import PHASES, Service, install, record, wait_active


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not PHASES:
        return
    terminalreporter.section("system test phases")
    totals: dict[str, list[float]] = {}
    for phase, seconds in PHASES:
        totals.setdefault(phase, []).append(seconds)
    for phase, values in totals.items():
        count = f" x{len(values)}" if len(values) > 1 else ""
        terminalreporter.write_line(
            f"{phase:<28} {sum(values):7.1f} s{count} (max {max(values):.1f} s)"
        )


@pytest.fixture(scope="session")
def system_ready() -> None:
    reason = why_cannot_boot()
    if reason:
        pytest.skip(reason)
    remove_stale_cgroups()


@pytest.fixture(scope="session")
def deb(system_ready: None) -> Path:
    built = _timed("deb build", ensure_deb)
    return built.path


@pytest.fixture(scope="session")
def rootfs(system_ready: None) -> Path:
    built = _timed("root build (mmdebstrap)", ensure_root)
    return built.path


def _timed(phase: str, build: Callable[[], Built]) -> Built:
    result = build()
    record(phase + (" (reused)" if result.reused else ""), result.seconds)
    return result


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("containers")


def boot(rootfs: Path, log_dir: Path) -> Container:
    container = Container.boot(rootfs, log_dir=log_dir)
    record("container boot", container.boot_seconds)
    return container


@pytest.fixture(scope="module")
def fresh(rootfs: Path, log_dir: Path) -> Iterator[Container]:
    """A booted container with nothing installed (module scope)."""
    container = boot(rootfs, log_dir)
    try:
        yield container
    finally:
        container.teardown()


@pytest.fixture(scope="module")
def installed(rootfs: Path, deb: Path, log_dir: Path) -> Iterator[Container]:
    """A booted container with the package installed and trendbotd.service active."""
    container = boot(rootfs, log_dir)
    try:
        install(container, deb)
        wait_active(container)
        yield container
    finally:
        container.teardown()


@pytest.fixture
def svc(installed: Container) -> Iterator[Service]:
    service = Service(installed)
    wait_active(installed)
    try:
        yield service
    finally:
        service.restore()
