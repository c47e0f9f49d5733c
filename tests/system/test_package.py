"""The .deb's life cycle on a pristine Debian 12 with systemd as PID 1.

One container for the module; the tests run in order and each continues from the state
the previous one left: install -> reinstall (the upgrade path) -> remove -> install again
-> purge.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from systest_container import Container, wait_until
from systest_support import DEB_INSIDE, UNIT, install, record, wait_active

pytestmark = pytest.mark.system

CONFIG = "/etc/trendbotd/trendbotd.toml"


def test_lintian_reports_no_errors(deb: Path) -> None:
    start = time.monotonic()
    result = subprocess.run(
        ["lintian", "--fail-on", "error", str(deb)], capture_output=True, text=True, check=False
    )
    record("lintian", time.monotonic() - start)
    errors = [line for line in result.stdout.splitlines() if line.startswith("E:")]
    assert result.returncode == 0 and not errors, result.stdout + result.stderr


def test_install_creates_user_enables_and_starts_the_service(fresh: Container, deb: Path) -> None:
    c = fresh
    assert c.run("getent", "passwd", "trendbotd", check=False).returncode == 2
    install(c, deb)
    wait_active(c)

    user = c.run("getent", "passwd", "trendbotd").stdout.strip().split(":")
    assert int(user[2]) < 1000, f"not a system user: {user}"
    assert user[5] == "/var/lib/trendbotd"
    assert user[6] in ("/usr/sbin/nologin", "/sbin/nologin")
    assert c.run("systemctl", "is-enabled", UNIT).stdout.strip() == "enabled"
    pid = c.prop(UNIT, "MainPID")
    assert c.run("ps", "-o", "user=", "-p", pid).stdout.strip() == "trendbotd"

    # The shipped environment runs on Debian's interpreter (the root has no other).
    python = c.run("readlink", "-f", "/usr/lib/trendbotd/bin/python3").stdout.strip()
    assert python == "/usr/bin/python3.11"
    version = c.run("trendbotd", "--version").stdout.strip()
    assert version.startswith("trendbotd "), version
    # The default config is a conffile and valid as shipped.
    conffiles = c.run("dpkg-query", "-W", "-f=${Conffiles}", "trendbotd").stdout
    assert CONFIG in conffiles
    c.run("runuser", "-u", "trendbotd", "--", "trendbotd", "check-config", "--config", CONFIG)
    assert c.exists("/usr/share/man/man8/trendbotd.8.gz")
    assert c.run("stat", "-c", "%U %a", "/var/lib/trendbotd").stdout.split() == ["trendbotd", "750"]


def test_reinstall_restarts_gracefully_including_template_instances(
    fresh: Container, deb: Path
) -> None:
    c = fresh
    c.write("/etc/trendbotd/second.toml", '[instance]\nname = "second"\n[exchange]\npaper = true\n')
    c.run("systemctl", "start", "trendbotd@second.service", timeout=180)
    old = {u: c.prop(u, "MainPID") for u in (UNIT, "trendbotd@second.service")}
    cursor = c.journal_cursor()

    c.run("dpkg", "-i", DEB_INSIDE, timeout=300)  # same version again: the upgrade path

    for unit, old_pid in old.items():
        wait_active(c, unit)
        assert c.prop(unit, "MainPID") != old_pid, f"{unit} was not restarted"
        messages = c.messages("-u", unit, after=cursor)
        assert any("Deactivated successfully" in m for m in messages), messages
        assert not any("Failed with result" in m for m in messages), messages
    c.run("systemctl", "stop", "trendbotd@second.service")
    c.run("rm", "/etc/trendbotd/second.toml")  # an operator's file: purge would keep it


def test_remove_stops_the_service_and_keeps_config_state_and_user(fresh: Container) -> None:
    c = fresh
    c.run("apt-get", "remove", "-y", "-q", "trendbotd", timeout=300)
    assert c.is_active(UNIT) in ("inactive", "unknown")
    assert c.run("pgrep", "-u", "trendbotd", check=False).returncode == 1
    assert c.exists(CONFIG)
    assert c.exists("/var/lib/trendbotd")
    assert c.run("getent", "passwd", "trendbotd", check=False).returncode == 0
    assert not c.exists("/usr/lib/trendbotd")


def test_install_again_then_purge_leaves_no_unit_user_or_runtime_dir(
    fresh: Container, deb: Path
) -> None:
    c = fresh
    install(c, deb)  # user and state already exist from before
    wait_active(c)
    assert c.exists("/run/trendbotd")

    c.run("apt-get", "purge", "-y", "-q", "trendbotd", timeout=300)

    units = c.run("systemctl", "list-unit-files", "--no-legend", "trendbotd*", check=False)
    assert units.stdout.strip() == "", units.stdout
    assert c.prop(UNIT, "LoadState") == "not-found"
    assert c.run("getent", "passwd", "trendbotd", check=False).returncode == 2
    assert c.run("getent", "group", "trendbotd", check=False).returncode == 2
    for path in (
        "/run/trendbotd",
        "/var/lib/trendbotd",
        "/etc/trendbotd",
        "/usr/lib/trendbotd",
        "/usr/bin/trendbotd",
        "/etc/systemd/system/multi-user.target.wants/trendbotd.service",
    ):
        assert not c.exists(path), f"{path} left after purge"
    # Nothing left owned by the deleted account, and nothing of it still running.
    orphans = c.run("find", "/etc", "/var", "/run", "/usr", "-xdev", "-nouser", check=False)
    assert orphans.stdout.strip() == "", orphans.stdout
    wait_until(
        lambda: "trendbotd" not in c.run("ps", "-eo", "args").stdout,
        timeout=10,
        what="no trendbotd process",
    )
