"""The [metrics] table: off by default, loopback only unless the operator opts in, and
every refusal is one line naming the file, line and key, exit 78."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from trendbotd import cli
from trendbotd.config import load_config
from trendbotd.core.listen_address import ListenAddress, parse_listen
from trendbotd.errors import ConfigError
from trendbotd.exitcodes import ExitCode


def _config(tmp_path: Path, table: str) -> Path:
    path = tmp_path / "t.toml"
    path.write_text("[exchange]\npaper = true\n\n[metrics]\n" + table)
    return path


def test_off_by_default(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, ""))
    assert config.metrics.listen == ""
    assert config.metrics.allow_non_loopback is False
    assert "config.metrics.listen=" in config.describe()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9464", ListenAddress("127.0.0.1", 9464)),
        ("127.0.0.2:1", ListenAddress("127.0.0.2", 1)),
        ("[::1]:9464", ListenAddress("::1", 9464)),
    ],
)
def test_loopback_addresses_are_accepted(
    tmp_path: Path, text: str, expected: ListenAddress
) -> None:
    config = load_config(_config(tmp_path, f'listen = "{text}"\n'))
    assert parse_listen(config.metrics.listen) == expected
    assert expected.is_loopback
    assert str(expected) == text


@pytest.mark.parametrize("text", ["0.0.0.0:9464", "192.168.1.5:9464", "[::]:9464"])
def test_non_loopback_is_refused_without_the_opt_in(tmp_path: Path, text: str) -> None:
    path = _config(tmp_path, f'listen = "{text}"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:5: metrics.listen: ")
    assert "is not a loopback address; set metrics.allow_non_loopback = true" in message
    assert "\n" not in message
    assert caught.value.exit_code == ExitCode.CONFIG_ERROR


def test_non_loopback_with_the_opt_in(tmp_path: Path) -> None:
    body = 'listen = "0.0.0.0:9464"\nallow_non_loopback = true\n'
    config = load_config(_config(tmp_path, body))
    assert not parse_listen(config.metrics.listen).is_loopback


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("localhost:9464", "'localhost' is not an IP address"),
        ("127.0.0.1", "must be IP:port"),
        (":9464", "must be IP:port"),
        ("127.0.0.1:0", "port '0' must be 1..65535"),
        ("127.0.0.1:70000", "must be 1..65535"),
        ("127.0.0.1:http", "must be 1..65535"),
        ("::1:9464", "needs brackets"),
    ],
)
def test_malformed_addresses(tmp_path: Path, text: str, why: str) -> None:
    with pytest.raises(ConfigError, match=f"metrics.listen: .*{why}"):
        load_config(_config(tmp_path, f'listen = "{text}"\n'))


def test_the_cli_refuses_a_public_address_with_one_line_and_78(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config(tmp_path, 'listen = "0.0.0.0:9464"\n')
    assert cli.main(["check-config", "--config", str(path)]) == ExitCode.CONFIG_ERROR
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"trendbotd: {path}:5: metrics.listen: 0.0.0.0:9464 is not a loopback")


def test_off_means_prometheus_client_is_never_imported() -> None:
    code = (
        "import sys\n"
        "from trendbotd.config import Config\n"
        "from trendbotd.trading.compose.metrics import start_metrics\n"
        "from trendbotd.service.notify import NullNotifier\n"
        "n = NullNotifier()\n"
        "assert start_metrics(Config(), n) is n\n"
        "assert 'prometheus_client' not in sys.modules, 'imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
