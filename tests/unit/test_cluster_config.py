"""The [cluster] table: off by default, defaults derived, unsafe timings refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.config_files import config_file

from trendbotd.adapters.credentials import Secret, load_etcd_credentials, registered_secrets
from trendbotd.cluster import settings
from trendbotd.cluster.fencing import Timing, may_send, timing_problem
from trendbotd.config import load_config
from trendbotd.errors import ConfigError, CredentialsError

ENDPOINTS = 'endpoints = ["http://127.0.0.1:2379", "http://127.0.0.1:22379"]\n'


def _config(tmp_path: Path, table: str) -> Path:
    return config_file(tmp_path, '[instance]\nname = "alpha"\n\n' + table)


def test_off_without_the_table(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, ""))
    assert not config.cluster.enabled
    assert not load_config(_config(tmp_path, "[cluster]\n")).cluster.enabled


def test_defaults_are_safe_and_derived_from_the_instance(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, "[cluster]\n" + ENDPOINTS))
    assert config.cluster.enabled
    assert settings.leader_key(config) == "/trendbotd/alpha/leader"
    assert settings.node_name(config)  # the host name
    timing = settings.timing(config)
    # TTL 30, recvWindow 3 s, clock bound 0.5 s, slack 2.5 s: trade until sent + 24 s
    assert timing.margin_s == pytest.approx(6.0)
    assert timing.send_window_s == pytest.approx(24.0)
    assert timing_problem(timing) is None
    assert "config.cluster.ttl_s=30" in config.describe()


def test_explicit_names(tmp_path: Path) -> None:
    table = "[cluster]\n" + ENDPOINTS + 'leader_key = "/x/lead"\nnode_name = "host-b"\n'
    config = load_config(_config(tmp_path, table))
    assert settings.leader_key(config) == "/x/lead"
    assert settings.node_name(config) == "host-b"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("ttl_s = 10\nrenew_s = 5", "cluster.ttl_s: unsafe timing: renew_s + 2 * rpc_timeout_s"),
        ("ttl_s = 6", "cluster.ttl_s: ttl_s 6 leaves no time to trade"),
        ("ttl_s = 1", "cluster.ttl_s: must be 2..3600"),
        ("ttl_s = 30.5", "cluster.ttl_s: expected an integer"),
        ("recv_window_ms = 100", "cluster.recv_window_ms: must be 1000..60000"),
        ('leader_key = "noslash"', "cluster.leader_key: must start with '/'"),
        ('password = "x"', "cluster.password: unknown key"),
        ('credentials_file = "/a"\ncredential_name = "b"', "cluster.credential_name: set"),
    ],
)
def test_refused_with_one_line(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_config(tmp_path, "[cluster]\n" + ENDPOINTS + table + "\n"))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_endpoint_and_settings_without_endpoints(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cluster\.endpoints: must be http"):
        load_config(_config(tmp_path, '[cluster]\nendpoints = ["127.0.0.1:2379"]\n'))
    with pytest.raises(ConfigError, match=r"cluster\.endpoints: is required"):
        load_config(_config(tmp_path, "[cluster]\nttl_s = 20\n"))


def test_the_clock_bound_counts_in_the_margin(tmp_path: Path) -> None:
    # 30 - (3 + 5 + 2.5) = 19.5 >= 9: still fine; 14 - 10.5 = 3.5 < 9: refused
    ok = "[exchange]\nmax_clock_offset_ms = 5000\n\n[cluster]\n" + ENDPOINTS
    assert settings.timing(load_config(_config(tmp_path, ok))).margin_s == pytest.approx(10.5)
    with pytest.raises(ConfigError, match=r"clock bound 5000 ms"):
        load_config(_config(tmp_path, ok + "ttl_s = 14\n"))


T = Timing(
    ttl_s=30, renew_s=5, rpc_timeout_s=2, recv_window_ms=3000, clock_bound_ms=500, slack_s=2.5
)


@pytest.mark.parametrize(
    ("now", "sent", "expected"),
    [
        (100.0, None, False),  # no lease held
        (100.0, 100.0, True),
        (123.9, 100.0, True),
        (124.0, 100.0, False),  # the deadline itself is already too late
        (140.0, 100.0, False),
        (99.0, 100.0, True),  # a renewal sent "after" now (same clock) still covers it
    ],
)
def test_may_send(now: float, sent: float | None, expected: bool) -> None:
    assert may_send(now, sent, T.ttl_s, T.margin_s) is expected


def test_etcd_credentials_file(tmp_path: Path) -> None:
    path = tmp_path / "etcd.toml"
    path.write_text('user = "trendbotd"\npassword = "pw-Zq9xKx81"\n')
    path.chmod(0o600)
    creds = load_etcd_credentials(credentials_file=path, credential_name="")
    assert creds is not None
    assert creds.user == "trendbotd"
    assert creds.password == Secret("pw-Zq9xKx81")
    assert "pw-Zq9xKx81" in registered_secrets()
    assert "pw-Zq9xKx81" not in repr(creds)
    assert load_etcd_credentials(credentials_file=None, credential_name="") is None
    path.chmod(0o644)
    with pytest.raises(CredentialsError, match="mode 0644"):
        load_etcd_credentials(credentials_file=path, credential_name="")


def test_etcd_systemd_credential(tmp_path: Path) -> None:
    (tmp_path / "etcd").write_text('user = "u"\npassword = "p-77"\nextra = 1\n')
    (tmp_path / "etcd").chmod(0o600)
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    with pytest.raises(CredentialsError, match="unknown keys extra"):
        load_etcd_credentials(credentials_file=None, credential_name="etcd", environ=env)
    with pytest.raises(CredentialsError, match=r"cluster\.credential_name = 'etcd'"):
        load_etcd_credentials(credentials_file=None, credential_name="etcd", environ={})
