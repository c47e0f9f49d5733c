"""API keys handed over by LoadCredential= never show up where others can look.

The daemon trades live (exchange.paper = false) against ``trendbotd sim-exchange``
running inside the container as a transient unit on 127.0.0.1. The sim makes the key
pair and writes it to a file (``--credentials-out``); that file becomes the systemd
credential. The daemon reaching READY=1 proves the keys were read and accepted; then
the journal (every field of every entry), the process list with arguments and
environments, and ``systemctl show``/``status`` are searched for them.
"""

from __future__ import annotations

import json
import tomllib

import pytest
from systest_container import Container, wait_until
from systest_support import UNIT, Service, wait_active

pytestmark = pytest.mark.system

SIM_UNIT = "trendbotd-sim.service"
SIM_PORT = 18080
SIM_CREDENTIALS = "/root/sim-credentials.toml"
CREDSTORE = "/etc/credstore/trendbotd.binance"
CONFIG = "/etc/trendbotd/trendbotd.toml"


def start_sim(svc: Service) -> dict[str, str]:
    c = svc.container
    svc.units.append(SIM_UNIT)
    svc.files.append(SIM_CREDENTIALS)
    c.run(
        "systemd-run", f"--unit={SIM_UNIT}", "--collect",
        # stdout repeats the API key for a person at a terminal; keep it out of the journal.
        "--property=StandardOutput=null",
        "/usr/bin/trendbotd", "sim-exchange", f"--port={SIM_PORT}",
        f"--credentials-out={SIM_CREDENTIALS}",
    )  # fmt: skip
    wait_until(
        lambda: c.exists(SIM_CREDENTIALS) and c.path(SIM_CREDENTIALS).stat().st_size > 0,
        timeout=60,
        what="the simulated exchange's credentials file",
    )
    keys = tomllib.loads(c.path(SIM_CREDENTIALS).read_text())
    return {"api_key": str(keys["api_key"]), "api_secret": str(keys["api_secret"])}


def leaks(c: Container, secrets: dict[str, str]) -> dict[str, list[str]]:
    pid = c.prop(UNIT, "MainPID")
    places = {
        "journalctl -o export (whole journal)": c.run("journalctl", "-o", "export").stdout,
        "ps axeww (arguments and environments)": c.run("ps", "axeww").stdout,
        "systemctl show trendbotd": c.run("systemctl", "show", UNIT).stdout,
        "systemctl status trendbotd": c.run(
            "systemctl", "status", "--no-pager", "-n", "200", UNIT, check=False
        ).stdout,
        "/proc/MAINPID/environ": c.path(f"/proc/{pid}/environ").read_text(errors="replace"),
        "/proc/MAINPID/cmdline": c.path(f"/proc/{pid}/cmdline").read_text(errors="replace"),
    }
    return {
        where: [name for name, value in secrets.items() if value in text]
        for where, text in places.items()
        if any(value in text for value in secrets.values())
    }


def test_credentials_from_load_credential_reach_the_exchange_but_nothing_else(
    svc: Service,
) -> None:
    c = svc.container
    secrets = start_sim(svc)
    svc.write(CREDSTORE, c.path(SIM_CREDENTIALS).read_text(), mode=0o600)
    svc.config(
        CONFIG,
        "[exchange]\npaper = false\n"
        f'base_url = "http://127.0.0.1:{SIM_PORT}"\ncredential_name = "binance"\n',
    )
    svc.drop_in(UNIT, f"LoadCredential=binance:{CREDSTORE}\n", name="50-credential.conf")

    c.run("systemctl", "restart", UNIT, timeout=180)
    wait_active(c)

    # Live mode really used the keys: the simulated exchange accepted signed requests.
    assert "paper=False" in "\n".join(c.messages("-u", UNIT, "-g", "config.exchange.paper"))
    fetch = (
        "import json, urllib.request; print(json.dumps(json.load(urllib.request.urlopen("
        f"'http://127.0.0.1:{SIM_PORT}/sim/requests'))))"
    )
    requests = json.loads(c.run("python3.11", "-c", fetch).stdout)
    signed = [r for r in requests if r["path"].endswith("/account") and r["accepted"]]
    assert signed, requests[-10:]
    assert leaks(c, secrets) == {}
    # The credential is private to the service: another user cannot read it.
    inside = f"/run/credentials/{UNIT}/binance"
    assert c.run("test", "-f", inside, check=False).returncode == 0
    denied = c.run("runuser", "-u", "nobody", "--", "cat", inside, check=False)
    assert denied.returncode != 0
