"""One sender per channel: takes the outbox rows pending for it, in order, and delivers them.

Each pass holds the channel's flock (``ChannelLock``) from reading the rows to marking them
sent, so the daemon and ``trendbotd alert`` never both send one row. A failure backs off
exponentially and only logs: a dead channel never reaches trading. Repeats waiting
together are coalesced into one message with a count; a rate limit caps messages per
window. An alert is sent twice only when the process dies between the send and its
bookkeeping: every message carries the alert's stable id for the receiver to drop it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from trendbotd.alerts.channels import AlertMessage, Channel, DeliveryError
from trendbotd.alerts.outbox import ChannelLock, Outbox
from trendbotd.alerts.policy import RateLimit, backoff_s, coalesce, render
from trendbotd.core import telemetry
from trendbotd.service.logsetup import redact

logger = logging.getLogger(__name__)

_IDLE_S = 30.0  # with nothing pending: look again this often (an emit wakes it at once)
_BUSY_S = 1.0  # the other process holds the channel: try again this soon


@dataclass(frozen=True, slots=True)
class SenderSettings:
    instance: str
    coalesce_window_ms: int
    rate_limit: RateLimit
    retry_base_s: float
    retry_max_s: float


class Outcome(Enum):
    IDLE = "idle"  # nothing pending
    SENT = "sent"
    FAILED = "failed"
    BUSY = "busy"  # another process is sending this channel
    WAITING = "waiting"  # rate limit or back-off


@dataclass(frozen=True, slots=True)
class Step:
    outcome: Outcome
    wait_s: float


class ChannelSender:
    def __init__(
        self,
        *,
        outbox: Outbox,
        channel: Channel,
        settings: SenderSettings,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self.channel = channel
        self._outbox = outbox
        self._settings = settings
        self._clock_ms = clock_ms
        self._lock = ChannelLock(outbox.path, channel.name)
        self._sent_ms: list[int] = []
        self._failures = 0
        self._retry_at_ms = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.delivered = 0
        self.failed = 0

    # -- one pass (also used directly by ``trendbotd alert``) -----------------------------

    def step(self) -> Step:
        now = self._clock_ms()
        if now < self._retry_at_ms:
            return Step(Outcome.WAITING, (self._retry_at_ms - now) / 1000)
        if not self._lock.try_acquire():
            return Step(Outcome.BUSY, _BUSY_S)
        try:
            return self._send_next(now)
        finally:
            self._lock.release()

    def _send_next(self, now: int) -> Step:
        pending = self._outbox.pending(self.channel.name)
        if not pending:
            return Step(Outcome.IDLE, _IDLE_S)
        limit = self._settings.rate_limit
        self._sent_ms = limit.prune(self._sent_ms, now)
        next_ms = limit.next_send_ms(self._sent_ms, now)
        if next_ms > now:
            return Step(Outcome.WAITING, (next_ms - now) / 1000)
        batch = coalesce(pending, window_ms=self._settings.coalesce_window_ms)[0]
        by_seq = {p.seq: p for p in pending}
        message = AlertMessage(
            alert_id=batch.first.alert_id,
            ids=tuple(by_seq[s].alert_id for s in batch.seqs),
            event=batch.first.event,
            severity=batch.first.severity,
            instance=self._settings.instance,
            text=render(batch),
            created_ms=batch.first.created_ms,
            fields=self._outbox.fields(batch.first.seq),
        )
        try:
            self.channel.send(message)
        except DeliveryError as e:
            return self._failed(batch.seqs, str(e))
        except Exception as e:
            logger.exception("alert.channel_crashed channel=%s", self.channel.name)
            return self._failed(batch.seqs, repr(e))
        sent_at = self._clock_ms()
        self._outbox.mark_sent(self.channel.name, batch.seqs, now_ms=sent_at)
        self._outbox.checkpoint()
        telemetry.alert_outbox_depth(self._outbox.depth())
        self._sent_ms.append(sent_at)
        self.delivered += batch.count
        if self._failures:
            logger.info(
                "alert.channel_back channel=%s after_failures=%d", self.channel.name, self._failures
            )
        self._failures = 0
        logger.debug(
            "alert.sent channel=%s id=%s count=%d",
            self.channel.name,
            message.alert_id,
            message.count,
        )
        return Step(Outcome.SENT, 0.0)

    def _failed(self, seqs: tuple[int, ...], reason: str) -> Step:
        self._failures += 1
        self.failed += 1
        self._outbox.mark_attempt(self.channel.name, seqs)
        self._outbox.checkpoint()
        telemetry.alert_failed(channel=self.channel.name)
        telemetry.alert_outbox_depth(self._outbox.depth())
        delay = backoff_s(
            self._failures, base_s=self._settings.retry_base_s, max_s=self._settings.retry_max_s
        )
        self._retry_at_ms = self._clock_ms() + int(delay * 1000)
        # The first failure and then every power of two: an outage of hours is a few lines.
        if self._failures & (self._failures - 1) == 0:
            logger.warning(
                "alert.delivery_failed channel=%s failures=%d retry_in_s=%.1f pending=%d %s",
                self.channel.name,
                self._failures,
                delay,
                self._outbox.depth(self.channel.name),
                redact(reason),
            )
        return Step(Outcome.FAILED, delay)

    # -- the thread ----------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"alert-{self.channel.name}", daemon=True
        )
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                step = self.step()
            except Exception:
                logger.exception("alert.sender_crashed channel=%s", self.channel.name)
                step = Step(Outcome.FAILED, 5.0)
            if step.wait_s > 0:
                self._wake.wait(step.wait_s)
                self._wake.clear()

    def stop(self, *, timeout_s: float) -> None:
        """Stop the thread; it finishes the send in progress for at most ``timeout_s``."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def drain(self, *, deadline: float) -> bool:
        """Send until nothing is pending or ``deadline`` (monotonic) passes; True when
        the channel has nothing left. For processes without the thread (``trendbotd
        alert``) and for the daemon's last moments, once the thread has stopped: the
        thread's send in progress holds this very lock object."""
        if self.running:
            return False
        while True:
            step = self.step()
            if step.outcome is Outcome.IDLE:
                return True
            remaining = deadline - time.monotonic()
            if step.wait_s >= remaining:
                return False
            if step.wait_s > 0:
                time.sleep(step.wait_s)
