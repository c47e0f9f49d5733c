"""Pure delivery decisions: which channels take an alert, when a channel may send next,
and how repeats waiting in the outbox merge into one message with a count.

No I/O and no clock reads: times come in as integer milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from trendbotd.alerts.events import Severity


@dataclass(frozen=True, slots=True)
class PendingAlert:
    """One outbox row waiting for one channel."""

    seq: int  # outbox order
    alert_id: str
    event: str
    severity: Severity
    created_ms: int
    text: str
    key: str  # coalescing key: repeats share it (event name plus what it is about)


@dataclass(frozen=True, slots=True)
class Batch:
    """What one message carries: the first alert of a run of repeats and how many."""

    first: PendingAlert
    seqs: tuple[int, ...]
    last_ms: int

    @property
    def count(self) -> int:
        return len(self.seqs)


def accepts(min_severity: Severity, severity: Severity) -> bool:
    return severity >= min_severity


def coalesce(pending: Sequence[PendingAlert], *, window_ms: int) -> list[Batch]:
    """Group repeats: alerts with the same key created within ``window_ms`` of the first of
    their group. Batches keep the order of their first alert, so messages stay in order."""
    batches: list[tuple[PendingAlert, list[int], int]] = []
    open_by_key: dict[str, int] = {}
    for alert in sorted(pending, key=lambda a: a.seq):
        index = open_by_key.get(alert.key)
        if index is not None and alert.created_ms - batches[index][0].created_ms <= window_ms:
            first, seqs, _ = batches[index]
            seqs.append(alert.seq)
            batches[index] = (first, seqs, alert.created_ms)
            continue
        open_by_key[alert.key] = len(batches)
        batches.append((alert, [alert.seq], alert.created_ms))
    return [Batch(first, tuple(seqs), last) for first, seqs, last in batches]


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``max_messages`` per ``window_ms`` on one channel (a sliding window)."""

    max_messages: int
    window_ms: int

    def next_send_ms(self, sent_ms: Sequence[int], now_ms: int) -> int:
        """The earliest time the next message may go, given the recent send times."""
        recent = sorted(t for t in sent_ms if t > now_ms - self.window_ms)
        if len(recent) < self.max_messages:
            return now_ms
        return recent[len(recent) - self.max_messages] + self.window_ms

    def prune(self, sent_ms: Sequence[int], now_ms: int) -> list[int]:
        return [t for t in sent_ms if t > now_ms - self.window_ms]


def backoff_s(failures: int, *, base_s: float, max_s: float) -> float:
    """Delay before the next attempt after ``failures`` consecutive failures (1, 2, 4 ...)."""
    if failures <= 0:
        return 0.0
    return float(min(max_s, base_s * 2.0 ** min(failures - 1, 30)))


def render(batch: Batch) -> str:
    """The message text; a coalesced batch says how many and over what span."""
    text = batch.first.text
    if batch.count > 1:
        span_s = (batch.last_ms - batch.first.created_ms) / 1000
        text += f" (x{batch.count} within {span_s:.0f} s)"
    return text
