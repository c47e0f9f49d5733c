"""The real paper daemon with alert channels pointed at local fake receivers: its config,
start and stop, and what the tests check in every received alert (no secret)."""

from __future__ import annotations

import json
import signal
import socket
import stat
import textwrap
import urllib.request
from pathlib import Path
from typing import Any

from support.daemon_harness import (
    REAL_CMD,
    DaemonFactory,
    DaemonHandle,
    NotifyListener,
    clean_env,
    write_config,
)

WEBHOOK_SECRET_PATH = "/hook/s3cretWebhookPath9f2c"
BOT_TOKEN = "123456:TopSecretBotToken-xyz987"


def secret_file(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    return path


def alert_config(
    tmp_path: Path, *, webhook_port: int, telegram_port: int | None = None, extra: str = ""
) -> Path:
    hook = secret_file(
        tmp_path / "hook.secret", f'url = "http://127.0.0.1:{webhook_port}{WEBHOOK_SECRET_PATH}"\n'
    )
    text = f"""
        [alerts]
        retry_base_s = 0.2
        retry_max_s = 0.5
        coalesce_window_s = 0
        stop_flush_s = 3
        {extra}

        [alerts.channels.hook]
        kind = "webhook"
        min_severity = "info"
        secret_file = "{hook}"
        """
    if telegram_port is not None:
        tg = secret_file(tmp_path / "tg.secret", f'bot_token = "{BOT_TOKEN}"\n')
        text += f"""
        [alerts.channels.tg]
        kind = "telegram"
        min_severity = "info"
        base_url = "http://127.0.0.1:{telegram_port}"
        chat_id = "-100200300"
        secret_file = "{tg}"
        """
    return write_config(tmp_path, textwrap.dedent(text))


def start_alerting(
    daemon: DaemonFactory, config: Path, listener: NotifyListener, **env: str
) -> DaemonHandle:
    handle = daemon.start(
        ["run", "--foreground", "--paper", "--config", str(config)],
        cmd=REAL_CMD,
        env=clean_env(NOTIFY_SOCKET=listener.path, **env),
    )
    listener.wait_key("READY", "1", timeout=60, proc=handle.proc, after=len(listener.messages()))
    return handle


def stop_alerting(handle: DaemonHandle) -> str:
    handle.signal(signal.SIGTERM)
    assert handle.wait(timeout=20) == 0
    _, err = handle.output()
    return err


def events(bodies: list[dict[str, Any]]) -> list[str]:
    return [b["event"] for b in bodies]


def one(bodies: list[dict[str, Any]], event: str) -> dict[str, Any]:
    """The only alert of this ``event`` among ``bodies``."""
    found = [b for b in bodies if b["event"] == event]
    assert len(found) == 1, events(bodies)
    return found[0]


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert WEBHOOK_SECRET_PATH not in text
        assert "s3cretWebhookPath" not in text
        assert BOT_TOKEN not in text
        assert "TopSecretBotToken" not in text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sim_post(port: int, route: str, body: dict[str, object]) -> None:
    """A control request to the paper daemon's simulator (``[paper] port``)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{route}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200


def sim_get(port: int, route: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{route}", timeout=30) as answer:
        return json.loads(answer.read())
