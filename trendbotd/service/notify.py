"""sd_notify(3) for the service manager. The only module that uses sdnotify.

Create the notifier after the daemon context is open (python-daemon closes every
descriptor it was not told to keep). Outside systemd (no NOTIFY_SOCKET) ``make_notifier``
returns a ``NullNotifier`` so callers never ask "are we under systemd?".

sdnotify 0.3.2 encodes with latin-1 and swallows errors; here every send error is logged,
and text is passed so that its latin-1 encoding is exactly its UTF-8 encoding (systemd
reads UTF-8), so STATUS= in any language arrives intact.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping

import sdnotify

from trendbotd.core.ports import Notifier

logger = logging.getLogger(__name__)

_MAX_STATUS = 1000  # keep well inside one datagram; systemctl shows one line anyway


def watchdog_interval(env: Mapping[str, str], *, pid: int) -> float | None:
    """Half of WATCHDOG_USEC in seconds when the watchdog is armed for ``pid``, else None."""
    raw = env.get("WATCHDOG_USEC", "")
    if not raw.isdigit() or int(raw) == 0:
        return None
    owner = env.get("WATCHDOG_PID", "")
    if owner and owner != str(pid):
        return None  # armed for another process (e.g. a wrapper that exec'd us is gone)
    return int(raw) / 2_000_000


def clean_status(text: str) -> str:
    """One line, bounded: a newline in STATUS= would start a new assignment (READY=1...)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= _MAX_STATUS else flat[: _MAX_STATUS - 3] + "..."


def _wire(message: str) -> str:
    # sdnotify does codecs.latin_1_encode(message): hand it the UTF-8 bytes as latin-1
    # code points so the datagram carries UTF-8 unchanged.
    return message.encode("utf-8").decode("latin-1")


class NullNotifier:
    """Outside systemd: every notification is a no-op."""

    def ready(self, status: str) -> None:
        pass

    def status(self, text: str) -> None:
        pass

    def watchdog(self) -> None:
        pass

    def extend_timeout(self, seconds: float) -> None:
        pass

    def reloading(self) -> None:
        pass

    def stopping(self, status: str) -> None:
        pass

    @property
    def watchdog_interval_s(self) -> float | None:
        return None


class SdNotifier:
    """Sends to $NOTIFY_SOCKET. A failed send is logged once per failure streak; the socket
    is reconnected on the next send (a datagram socket whose peer went away stays broken)."""

    def __init__(self, *, watchdog_interval_s: float | None) -> None:
        self._interval = watchdog_interval_s
        self._failing = False
        self._notifier: sdnotify.SystemdNotifier | None = None
        self._connect()

    def _connect(self) -> sdnotify.SystemdNotifier | None:
        try:
            self._notifier = sdnotify.SystemdNotifier(debug=True)
        except OSError as e:
            self._notifier = None
            self._report(f"notify.connect_failed socket={os.environ.get('NOTIFY_SOCKET')}", e)
        return self._notifier

    def _report(self, event: str, error: OSError) -> None:
        if not self._failing:
            logger.error("%s error=%s", event, error)
            self._failing = True

    @property
    def watchdog_interval_s(self) -> float | None:
        return self._interval

    def ready(self, status: str) -> None:
        self._send(f"READY=1\nSTATUS={clean_status(status)}")

    def status(self, text: str) -> None:
        self._send(f"STATUS={clean_status(text)}")

    def watchdog(self) -> None:
        self._send("WATCHDOG=1")

    def extend_timeout(self, seconds: float) -> None:
        self._send(f"EXTEND_TIMEOUT_USEC={max(1, int(seconds * 1_000_000))}")

    def reloading(self) -> None:
        # Both in one datagram: systemd (253+) pairs RELOADING=1 with this timestamp.
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self._send(f"RELOADING=1\nMONOTONIC_USEC={usec}\nSTATUS=reloading configuration")

    def stopping(self, status: str) -> None:
        self._send(f"STOPPING=1\nSTATUS={clean_status(status)}")

    def _send(self, message: str) -> None:
        notifier = self._notifier or self._connect()
        if notifier is None:
            return
        try:
            notifier.notify(_wire(message))
        except OSError as e:
            self._report(f"notify.send_failed message={message.split(chr(10), 1)[0]}", e)
            self._notifier = None  # reconnect next time
            return
        if self._failing:
            logger.info("notify.send_recovered")
            self._failing = False


def make_notifier(env: Mapping[str, str] | None = None, *, pid: int | None = None) -> Notifier:
    env = os.environ if env is None else env
    if not env.get("NOTIFY_SOCKET"):
        return NullNotifier()
    return SdNotifier(watchdog_interval_s=watchdog_interval(env, pid=pid or os.getpid()))
