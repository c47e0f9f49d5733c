"""Exchange clock offset from round-trip samples, and the guard that gates orders on it.

Pure: no I/O, no clock reads. The exchange adapter takes the samples; the host clock is
never changed, the offset is only added to request timestamps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from trendbotd.domain import ClockOffset
from trendbotd.errors import ClockNotSyncedError


@dataclass(frozen=True, slots=True)
class TimeSample:
    """One GET /time round trip: local send, the server's answer, local receive (ms)."""

    local_send_ms: int
    server_ms: int
    local_recv_ms: int

    @property
    def round_trip_ms(self) -> int:
        return self.local_recv_ms - self.local_send_ms

    @property
    def offset(self) -> Fraction:
        """Server time minus the midpoint of the round trip (exact, may be a half ms)."""
        return self.server_ms - Fraction(self.local_send_ms + self.local_recv_ms, 2)


def estimate_offset(samples: Sequence[TimeSample], *, measured_at_ms: int) -> ClockOffset:
    """Median of the samples' offsets; uncertainty is half the round trip of the sample(s)
    the median came from, rounded up. Samples whose local clock ran backwards are ignored."""
    valid = sorted((s for s in samples if s.round_trip_ms >= 0), key=lambda s: s.offset)
    if not valid:
        raise ValueError("no usable clock sample (none given, or the local clock ran backwards)")
    mid = len(valid) // 2
    chosen = valid[mid : mid + 1] if len(valid) % 2 else valid[mid - 1 : mid + 1]
    offset = sum((s.offset for s in chosen), Fraction(0)) / len(chosen)
    uncertainty = max(math.ceil(Fraction(s.round_trip_ms, 2)) for s in chosen)
    return ClockOffset(
        offset_ms=round(offset),
        uncertainty_ms=uncertainty,
        measured_at_ms=measured_at_ms,
        samples=len(valid),
    )


@dataclass(frozen=True, slots=True)
class ClockVerdict:
    ok: bool
    reason: str  # why orders are refused; "" when ok


class ClockGuard:
    """Decides whether orders may be sent given the last measured offset and ``now_ms``.

    Refuses when the offset is unknown, when |offset| or its uncertainty exceed
    ``max_offset_ms`` (the host clock is broken; fix NTP), or when the measurement is older
    than ``max_age_ms`` (re-measure first).
    """

    def __init__(self, *, max_offset_ms: int, max_age_ms: int) -> None:
        if max_offset_ms <= 0 or max_age_ms <= 0:
            raise ValueError("max_offset_ms and max_age_ms must be positive")
        self.max_offset_ms = max_offset_ms
        self.max_age_ms = max_age_ms

    def is_stale(self, offset: ClockOffset | None, *, now_ms: int) -> bool:
        return offset is None or now_ms - offset.measured_at_ms > self.max_age_ms

    def check(self, offset: ClockOffset | None, *, now_ms: int) -> ClockVerdict:
        if offset is None:
            return ClockVerdict(False, "exchange clock offset not measured yet")
        if abs(offset.offset_ms) > self.max_offset_ms:
            return ClockVerdict(
                False,
                f"clock offset {offset.offset_ms} ms exceeds the bound of "
                f"{self.max_offset_ms} ms (fix the host's time synchronisation)",
            )
        if offset.uncertainty_ms > self.max_offset_ms:
            return ClockVerdict(
                False,
                f"clock offset uncertainty {offset.uncertainty_ms} ms exceeds the bound of "
                f"{self.max_offset_ms} ms (round trips to the exchange too slow)",
            )
        age = now_ms - offset.measured_at_ms
        if age > self.max_age_ms:
            return ClockVerdict(
                False, f"clock offset measured {age} ms ago, older than {self.max_age_ms} ms"
            )
        return ClockVerdict(True, "")

    def require(self, offset: ClockOffset | None, *, now_ms: int) -> ClockOffset:
        """The offset if orders may be sent, else ClockNotSyncedError with the reason."""
        verdict = self.check(offset, now_ms=now_ms)
        if not verdict.ok or offset is None:
            raise ClockNotSyncedError(f"orders refused: {verdict.reason}")
        return offset
