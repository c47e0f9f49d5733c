"""``AlertSink.emit(event, **fields)``: what the rest of the daemon calls. Never blocks on a
channel and never raises: it writes one outbox row (a short local SQLite transaction) and
wakes the senders. Critical events also go to the log at CRITICAL, so ``journalctl -p crit``
finds them whether or not a channel is configured.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Protocol

from trendbotd.alerts.events import EventSpec, Severity, spec_for
from trendbotd.alerts.outbox import NewAlert, Outbox
from trendbotd.alerts.policy import accepts
from trendbotd.service.logsetup import redact

logger = logging.getLogger(__name__)

FieldValue = str | int | float | None


class AlertSink(Protocol):
    def emit(
        self, event: str, *, alert_id: str | None = None, key: str = "", **fields: FieldValue
    ) -> str | None:
        """Queue ``event``; returns its id (None when it could not be stored). ``key``
        names what it is about (a symbol): repeats with the same event and key coalesce."""
        ...


def _text(spec: EventSpec, fields: dict[str, str]) -> str:
    """``summary: k=v k=v``; a multi-line value (log lines) follows on its own lines."""
    details = " ".join(f"{k}={v}" for k, v in fields.items() if "\n" not in v)
    blocks = "".join(f"\n{k}:\n{v}" for k, v in fields.items() if "\n" in v)
    return (f"{spec.summary}: {details}" if details else spec.summary) + blocks


def _log(spec: EventSpec, alert_id: str, text: str) -> None:
    level = logging.CRITICAL if spec.severity >= Severity.CRITICAL else logging.INFO
    logger.log(
        level, "alert.%s severity=%s id=%s %s", spec.name, spec.severity.label, alert_id, text
    )


def _fields(fields: dict[str, FieldValue]) -> dict[str, str]:
    return {k: redact("" if v is None else str(v)) for k, v in fields.items()}


class NullAlertSink:
    """No channel configured: the log line (CRITICAL for critical events) is all there is."""

    def emit(
        self, event: str, *, alert_id: str | None = None, key: str = "", **fields: FieldValue
    ) -> str | None:
        spec = spec_for(event)
        alert_id = alert_id or uuid.uuid4().hex
        _log(spec, alert_id, _text(spec, _fields(fields)))
        return alert_id


class OutboxAlertSink:
    def __init__(
        self,
        *,
        outbox: Outbox,
        channels: Sequence[tuple[str, Severity]],  # (name, minimum severity)
        wake: Callable[[], None],
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self._outbox = outbox
        self._channels = tuple(channels)
        self._wake = wake
        self._clock_ms = clock_ms
        self._dropped_seen = outbox.dropped()

    def emit(
        self, event: str, *, alert_id: str | None = None, key: str = "", **fields: FieldValue
    ) -> str | None:
        spec = spec_for(event)  # an unknown name is a bug: raise at the call site
        alert_id = alert_id or uuid.uuid4().hex
        values = _fields(fields)
        text = _text(spec, values)
        _log(spec, alert_id, text)
        targets = [name for name, minimum in self._channels if accepts(minimum, spec.severity)]
        try:
            added = self._outbox.add(
                NewAlert(
                    alert_id=alert_id,
                    event=spec.name,
                    severity=spec.severity,
                    created_ms=self._clock_ms(),
                    coalesce_key=f"{spec.name}/{key}",
                    text=text,
                    fields=values,
                ),
                targets,
            )
            dropped = self._outbox.dropped()
        except Exception:
            logger.exception("alert.outbox_failed event=%s id=%s", spec.name, alert_id)
            return None
        if not added:
            logger.info("alert.duplicate event=%s id=%s (already reported)", spec.name, alert_id)
            return alert_id
        if dropped > self._dropped_seen:
            logger.warning(
                "alert.outbox_full dropped=%d total_dropped=%d max=%d",
                dropped - self._dropped_seen,
                dropped,
                self._outbox.max_alerts,
            )
            self._dropped_seen = dropped
        if targets:
            self._wake()
        return alert_id
