"""[alerts] configuration, channel secrets, the failed-unit report and the null sink."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from support.config_files import config_file

from trendbotd.adapters.credentials import load_secret_table, registered_secrets
from trendbotd.alerts.sink import NullAlertSink
from trendbotd.alerts.unit_report import config_for_unit, describe_failure, parse_show
from trendbotd.config import load_alert_config, load_config
from trendbotd.errors import ConfigError, CredentialsError

CHANNELS = """
[alerts]
rate_limit = 5

[alerts.channels.ops]
kind = "telegram"
min_severity = "critical"
chat_id = "42"
secret_name = "tg"

[alerts.channels.hook]
secret_file = "/etc/trendbotd/hook.secret"
"""


def _write(tmp_path: Path, text: str) -> Path:
    return config_file(tmp_path, text)


def test_channels_are_tables_named_by_their_key(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, CHANNELS))
    assert config.alerts.rate_limit == 5
    ops, hook = config.alerts.channels
    assert (ops.name, ops.kind, ops.min_severity, ops.chat_id) == (
        "ops",
        "telegram",
        "critical",
        "42",
    )
    assert (hook.name, hook.kind, hook.min_severity) == ("hook", "webhook", "warning")
    assert hook.secret_file == Path("/etc/trendbotd/hook.secret")
    assert "config.alerts.rate_limit=5" in config.describe()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[alerts.channels.x]\nkind = "sms"\nsecret_name = "a"\n', "alerts.channels.x.kind"),
        ('[alerts.channels.x]\nkind = "webhook"\n', "set exactly one of secret_file"),
        ('[alerts.channels.x]\nkind = "telegram"\nsecret_name = "a"\n', "needs chat_id"),
        ('[alerts.channels.x]\nsecret_name = "a"\nurl = "http://h"\n', "unknown key"),
        ('[alerts.channels.Bad]\nsecret_name = "a"\n', "the name must be"),
        ("[alerts]\nstop_flush_s = 60\n", "alerts.stop_flush_s"),
        ("[alerts]\nunreachable_alert_s = -1\n", "alerts.unreachable_alert_s"),
    ],
)
def test_bad_alert_settings_are_config_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(_write(tmp_path, text))


def test_the_alert_command_reads_alerts_despite_a_mistake_elsewhere(tmp_path: Path) -> None:
    path = _write(tmp_path, CHANNELS + "\n[risk]\nmax_leverage = 500\n[nonsense]\nx = 1\n")
    with pytest.raises(ConfigError):
        load_config(path)
    assert [c.name for c in load_alert_config(path).alerts.channels] == ["ops", "hook"]


def test_secret_table_from_a_private_file_is_registered(tmp_path: Path) -> None:
    path = tmp_path / "hook.secret"
    path.write_text('url = "https://ntfy.example/alerts-Xy7secret"\n')
    path.chmod(0o600)
    secret = load_secret_table(
        secret_file=path, secret_name="", keys=("url",), setting="alerts.channels.hook"
    )
    assert secret["url"].reveal() == "https://ntfy.example/alerts-Xy7secret"
    assert "https://ntfy.example/alerts-Xy7secret" in registered_secrets()
    path.chmod(0o640)
    with pytest.raises(CredentialsError, match="mode 0640"):
        load_secret_table(secret_file=path, secret_name="", keys=("url",), setting="s")


def test_secret_table_from_a_systemd_credential(tmp_path: Path) -> None:
    (tmp_path / "tg").write_text('bot_token = "1:abcdefSecret"\n')
    (tmp_path / "tg").chmod(0o400)
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    secret = load_secret_table(
        secret_file=None, secret_name="tg", keys=("bot_token",), setting="s", environ=env
    )
    assert secret["bot_token"].reveal() == "1:abcdefSecret"
    with pytest.raises(CredentialsError, match="expected exactly the keys url") as info:
        load_secret_table(
            secret_file=None, secret_name="tg", keys=("url",), setting="s", environ=env
        )
    assert "abcdefSecret" not in str(info.value)
    with pytest.raises(CredentialsError, match="CREDENTIALS_DIRECTORY is not set"):
        load_secret_table(
            secret_file=None, secret_name="tg", keys=("url",), setting="s", environ={}
        )


def test_failure_report_prefers_systemds_monitor_variables() -> None:
    show = parse_show(
        "Result=exit-code\nExecMainCode=1\nExecMainStatus=78\nInvocationID=abc\nNRestarts=2\n"
    )
    lines = [f"line {i}" for i in range(30)] + ["api_key=AAAAAAAAAAAA leaked?"]
    failure = describe_failure("trendbotd.service", env={}, show=show, log_lines=lines)
    assert (failure.result, failure.exit_code, failure.exit_status) == ("exit-code", "exited", "78")
    assert failure.invocation_id == "abc" and failure.restarts == "2"
    assert failure.log.splitlines()[0] == "line 11"  # the last 20
    assert "AAAAAAAAAAAA" not in failure.log
    monitor = {
        "MONITOR_SERVICE_RESULT": "watchdog",
        "MONITOR_EXIT_CODE": "dumped",
        "MONITOR_EXIT_STATUS": "ABRT",
        "MONITOR_INVOCATION_ID": "failedrun",
    }
    failure = describe_failure("trendbotd.service", env=monitor, show=show, log_lines=[])
    assert (failure.result, failure.exit_code, failure.exit_status) == (
        "watchdog",
        "dumped",
        "ABRT",
    )
    assert failure.invocation_id == "failedrun"


def test_null_sink_logs_critical_events_at_critical(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    sink = NullAlertSink()
    sink.emit("stop.failed", key="BTC", symbol="BTC/USDT:USDT", reason="-2021")
    sink.emit("daemon.started")
    levels = [(r.levelno, r.getMessage().split()[0]) for r in caplog.records]
    assert levels == [
        (logging.CRITICAL, "alert.stop.failed"),
        (logging.INFO, "alert.daemon.started"),
    ]
    assert "symbol=BTC/USDT:USDT" in caplog.records[0].getMessage()
    with pytest.raises(KeyError):
        sink.emit("not.catalogued")


def test_an_instance_unit_names_its_own_config() -> None:
    assert config_for_unit("trendbotd@eth.service") == Path("/etc/trendbotd/eth.toml")
    assert config_for_unit("trendbotd.service") is None
    assert config_for_unit("other@x.service") is None
