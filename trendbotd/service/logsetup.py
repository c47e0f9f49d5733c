"""Where log lines go and what they may contain.

- Under journald (JOURNAL_STREAM names our stderr): ``<N>`` syslog priority prefix on every
  line, no timestamps (journald adds them), so ``journalctl -p warning`` filters.
- Elsewhere in the foreground (terminal, pipe): readable lines with timestamps.
- ``--daemon``: ``service.log_file`` if set, else syslog (/dev/log), else ./var/log/NAME.log.

Every handler carries ``RedactionFilter``: registered secrets (API key, secret) and
signature/API-key patterns never reach a line, neither in the message nor in a traceback.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, TextIO

from trendbotd.adapters.credentials import registered_secrets
from trendbotd.service.journalstream import under_journald

LogMode = Literal["foreground", "daemon"]

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

# syslog(3) priorities for journald's stream protocol, highest level first
_PRIORITY = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))

SYSLOG_SOCKET = "/dev/log"
MASK = "***"
# key=value / key: value / "key": "value" for names that carry credentials or signatures.
_SECRET_PATTERN = re.compile(
    r"""(?ix)
    (\b(?:x-mbx-apikey|api[_-]?key|apikey|api[_-]?secret|secret[_-]?key|secret|signature
        |password|passphrase|token)\b
     ["']?\s*[:=]\s*["']?)
    ([^\s"'&,;)}\].(]{6,})        # a value, not code: `secret: str`, `secret = self.f()`
    (?=$|[\s"'&,;)}\]])
    """
)


def redact(text: str) -> str:
    # longest first, so a secret containing another is masked whole
    for secret in sorted(registered_secrets(), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return _SECRET_PATTERN.sub(lambda m: m.group(1) + MASK, text)


class RedactionFilter(logging.Filter):
    """Renders the message and the exception text, redacted, into the record itself, so
    every formatter downstream sees only redacted text."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            # A bad format call: never let logging's error path print the raw arguments.
            message = f"unformattable log message {record.msg!r}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class _RedactingFormatter(logging.Formatter):
    """Second line of defence: redact the final text as well (custom fields, formats)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JournalFormatter(_RedactingFormatter):
    """``<N>logger: message``; each line of a traceback carries the same priority."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).split("\n"))


def syslog_priority(levelno: int) -> int:
    return next((p for lvl, p in _PRIORITY if levelno >= lvl), 7)


def configure_logging(
    *,
    level: str,
    mode: LogMode,
    ident: str,
    log_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    stream: TextIO | None = None,
) -> str:
    """Install the root handler. Returns a short description of where logs go."""
    env = os.environ if env is None else env
    stream = sys.stderr if stream is None else stream
    handler: logging.Handler
    note = ""
    if mode == "daemon" and log_file is None and not Path(SYSLOG_SOCKET).is_socket():
        log_file = Path.cwd() / "var" / "log" / f"{ident}.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        note = f" ({SYSLOG_SOCKET} missing)"
    if mode == "daemon" and log_file is not None:
        # WatchedFileHandler reopens after logrotate moved the file.
        handler = logging.handlers.WatchedFileHandler(log_file, encoding="utf-8")
        handler.setFormatter(_RedactingFormatter(f"%(asctime)s {ident}[%(process)d] " + _BODY))
        where = f"file {log_file}{note}"
    elif mode == "daemon":
        handler = logging.handlers.SysLogHandler(
            address=SYSLOG_SOCKET, facility=logging.handlers.SysLogHandler.LOG_DAEMON
        )
        handler.setFormatter(_RedactingFormatter(f"{ident}[%(process)d]: " + _BODY))
        where = f"syslog {SYSLOG_SOCKET}"
    elif under_journald(stream, env):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JournalFormatter())
        where = "journald (stderr)"
    else:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(_RedactingFormatter("%(asctime)s " + _BODY))
        where = "stderr"
    handler.addFilter(RedactionFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    set_level(level)
    logging.captureWarnings(True)
    return where


_BODY = "%(levelname)s %(name)s: %(message)s"


def set_level(level: str) -> None:
    logging.getLogger().setLevel(_LEVELS.get(level, logging.INFO))
