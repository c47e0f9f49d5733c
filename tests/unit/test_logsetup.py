"""Log destinations and formats, and the guarantee that secrets never reach a line."""

from __future__ import annotations

import io
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from trendbotd.adapters.credentials import register_secret
from trendbotd.service.logsetup import (
    MASK,
    configure_logging,
    redact,
    syslog_priority,
    under_journald,
)

SECRET = "aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5oQ7sU9wY1"
API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"


@pytest.fixture
def credentials() -> Iterator[list[str]]:
    """Secrets registered with the credentials adapter, as the exchange setup does."""
    register_secret(SECRET)
    register_secret(API_KEY)
    yield [SECRET, API_KEY]


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield root
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in saved[0]:
        root.addHandler(h)
    root.setLevel(saved[1])


def _raise(error: Exception) -> None:
    raise error


def _capture(root: logging.Logger, **kw: object) -> io.StringIO:
    stream = io.StringIO()
    configure_logging(level="debug", mode="foreground", ident="t", stream=stream, env={}, **kw)  # type: ignore[arg-type]
    return stream


def test_registered_secrets_are_masked_in_messages_and_tracebacks(
    credentials: list[str], root_logger: logging.Logger
) -> None:
    stream = _capture(root_logger)
    log = logging.getLogger("trendbotd.test")
    log.info("loaded key %s and secret %s", API_KEY, SECRET)
    log.warning(f"f-string with {SECRET} inside")
    try:
        _raise(RuntimeError(f"auth failed for {API_KEY}"))
    except RuntimeError:
        log.exception("request.failed")
    out = stream.getvalue()
    assert SECRET not in out and API_KEY not in out
    assert out.count(MASK) >= 4
    assert "Traceback" in out and "RuntimeError: auth failed for ***" in out


@pytest.mark.parametrize(
    ("text", "leak"),
    [
        ("GET /fapi/v1/order?symbol=BTCUSDT&timestamp=1&signature=9f86d081884c7d65", "9f86d08"),
        ("headers={'X-MBX-APIKEY': 'K3yV4lu3xyz'}", "K3yV4lu3xyz"),
        ("X-MBX-APIKEY: K3yV4lu3xyz", "K3yV4lu3xyz"),
        ("config {'apiKey': 'abcDEF123', 'secret': 'ghiJKL456'}", "abcDEF123"),
        ("config {'apiKey': 'abcDEF123', 'secret': 'ghiJKL456'}", "ghiJKL456"),
        ('api_secret = "s3cr3tvalue"', "s3cr3tvalue"),
        ("api_key=plainvalue other=1", "plainvalue"),
    ],
)
def test_patterns_are_masked_without_registration(text: str, leak: str) -> None:
    out = redact(text)
    assert leak not in out
    assert MASK in out


@pytest.mark.parametrize(
    "text",
    [
        "order.sent symbol=BTCUSDT cid=tb-1-abc side=buy amount=0.01",
        # source lines quoted in tracebacks are code, not values
        "    base_url, api_key, api_secret = self._start_paper_exchange()",
        "  def load(api_secret: str, token: bytes) -> None:",
        "secret=None",
    ],
)
def test_redaction_keeps_ordinary_text(text: str) -> None:
    assert redact(text) == text


def test_bad_format_arguments_do_not_leak(
    credentials: list[str], root_logger: logging.Logger
) -> None:
    stream = _capture(root_logger)
    err = io.StringIO()
    saved, sys.stderr = sys.stderr, err
    try:
        logging.getLogger("x").info("two placeholders %s %s", SECRET)  # noqa: PLE1206
    finally:
        sys.stderr = saved
    assert SECRET not in stream.getvalue() + err.getvalue()
    assert "unformattable" in stream.getvalue()


def test_terminal_format_has_timestamps(root_logger: logging.Logger) -> None:
    stream = _capture(root_logger)
    logging.getLogger("trendbotd.x").info("hello %s", "world")
    line = stream.getvalue().strip()
    assert line[:4].isdigit() and line.endswith("INFO trendbotd.x: hello world")


def test_journald_detection_and_priorities(tmp_path: Path, root_logger: logging.Logger) -> None:
    path = tmp_path / "stream"
    with path.open("w+", encoding="utf-8") as f:
        st = os.fstat(f.fileno())
        env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        assert under_journald(f, env)  # type: ignore[arg-type]
        assert not under_journald(f, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"})  # type: ignore[arg-type]
        where = configure_logging(level="info", mode="foreground", ident="t", stream=f, env=env)  # type: ignore[arg-type]
        assert where.startswith("journald")
        log = logging.getLogger("trendbotd.j")
        log.info("info line")
        log.warning("careful")
        log.debug("hidden at info level")
        try:
            _raise(ValueError("boom"))
        except ValueError:
            log.exception("failed")
        f.flush()
    lines = path.read_text().splitlines()
    assert lines[0] == "<6>trendbotd.j: info line"
    assert lines[1] == "<4>trendbotd.j: careful"
    assert lines[2] == "<3>trendbotd.j: failed"
    assert all(line.startswith("<3>") for line in lines[2:])  # the traceback keeps priority
    assert not any("hidden" in line for line in lines)


def test_syslog_priority_mapping() -> None:
    assert syslog_priority(logging.CRITICAL) == 2
    assert syslog_priority(logging.ERROR) == 3
    assert syslog_priority(logging.WARNING) == 4
    assert syslog_priority(logging.INFO) == 6
    assert syslog_priority(logging.DEBUG) == 7
    assert syslog_priority(25) == 6


def test_daemon_mode_writes_the_log_file(
    tmp_path: Path, credentials: list[str], root_logger: logging.Logger
) -> None:
    log_file = tmp_path / "d.log"
    where = configure_logging(level="info", mode="daemon", ident="bot", log_file=log_file)
    assert where == f"file {log_file}"
    logging.getLogger("trendbotd.d").error("auth failed secret=%s", SECRET)
    for h in root_logger.handlers:
        h.flush()
    text = log_file.read_text()
    assert "bot[" in text and "ERROR trendbotd.d: auth failed secret=***" in text
    assert SECRET not in text
