"""The unit files as systemd itself judges them, and the sandbox the daemon really gets."""

from __future__ import annotations

import re

import pytest
from systest_container import Container
from systest_support import UNIT

pytestmark = pytest.mark.system

MAX_EXPOSURE = 2.0


def test_units_pass_systemd_analyze_verify(installed: Container) -> None:
    # --man=no: the root has no man-db; test_package checks that the page is installed.
    result = installed.run(
        "systemd-analyze",
        "verify",
        "--man=no",
        "/lib/systemd/system/trendbotd.service",
        "/lib/systemd/system/trendbotd@.service",
        "/lib/systemd/system/trendbotd-alert@.service",
        check=False,
    )
    # verify prints problems (unknown keys, bad values, missing binaries) on stderr.
    problems = [line for line in result.stderr.splitlines() if "trendbotd" in line]
    assert result.returncode == 0 and not problems, result.stderr


@pytest.mark.parametrize("unit", [UNIT, "trendbotd@example.service"])
def test_security_exposure_is_at_most_two(installed: Container, unit: str) -> None:
    out = installed.run("systemd-analyze", "security", "--no-pager", unit).stdout
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
    assert m, out
    assert float(m.group(1)) <= MAX_EXPOSURE, out


def test_daemon_runs_unprivileged_in_its_sandbox(installed: Container) -> None:
    c = installed
    pid = c.prop(UNIT, "MainPID")
    status = dict(
        line.split(":", 1) for line in c.path(f"/proc/{pid}/status").read_text().splitlines()
    )
    assert c.run("ps", "-o", "user=", "-p", pid).stdout.strip() == "trendbotd"
    assert int(status["CapEff"].strip(), 16) == 0
    assert int(status["CapBnd"].strip(), 16) == 0
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Seccomp"].strip() == "2"  # SystemCallFilter= is in force
    # The OS tree is read-only for it; its state and runtime directories are not.
    probe = "import os, sys; print(*[os.access(p, os.W_OK) for p in sys.argv[1:]])"
    uid, gid = (c.run("id", flag, "trendbotd").stdout.strip() for flag in ("-u", "-g"))
    writable = c.run(
        "nsenter", "-t", pid, "-m", "-S", uid, "-G", gid, "--",
        "/usr/lib/trendbotd/bin/python3", "-c", probe,
        "/usr/lib/trendbotd", "/etc/trendbotd", "/var/lib/trendbotd", "/run/trendbotd",
    ).stdout.split()  # fmt: skip
    assert writable == ["False", "False", "True", "True"]
