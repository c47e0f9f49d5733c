"""Exchange clock offset from round-trip samples, and the guard that gates orders on it.

Pure: no I/O, no clock reads. The exchange adapter takes the samples; the host clock is
never changed, the offset is only added to request timestamps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from trendbotd.core.domain import ClockOffset
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


def fastest_samples(samples: Sequence[TimeSample]) -> list[TimeSample]:
    """The quarter of the usable samples with the shortest round trips (at least one).

    A slow round trip is usually slow in one direction only (a queue, a retransmit), which
    moves its midpoint away from the moment the server stamped its time; the fastest ones
    bound the error tightest. Samples whose local clock ran backwards are not usable."""
    valid = sorted((s for s in samples if s.round_trip_ms >= 0), key=lambda s: s.round_trip_ms)
    return valid[: max(1, len(valid) // 4)]


def estimate_offset(samples: Sequence[TimeSample], *, measured_at_ms: int) -> ClockOffset:
    """Median offset of the fastest samples (``fastest_samples``); uncertainty is half the
    round trip of the sample(s) the median came from, rounded up."""
    fastest = sorted(fastest_samples(samples), key=lambda s: s.offset)
    if not fastest:
        raise ValueError("no usable clock sample (none given, or the local clock ran backwards)")
    mid = len(fastest) // 2
    chosen = fastest[mid : mid + 1] if len(fastest) % 2 else fastest[mid - 1 : mid + 1]
    offset = sum((s.offset for s in chosen), Fraction(0)) / len(chosen)
    round_trip = max(s.round_trip_ms for s in chosen)
    return ClockOffset(
        offset_ms=round(offset),
        uncertainty_ms=math.ceil(Fraction(round_trip, 2)),
        measured_at_ms=measured_at_ms,
        samples=sum(1 for s in samples if s.round_trip_ms >= 0),
        round_trip_ms=round_trip,
    )


def signing_offset_ms(offset: ClockOffset, *, recv_window_ms: int) -> int:
    """The offset to sign requests with: the estimate moved back by its uncertainty.

    Binance refuses a timestamp 1 s or more ahead of its clock (-1021) but accepts one up
    to ``recvWindow`` behind it. The true offset lies within the estimate plus or minus the
    uncertainty (half the sample's round trip), so signing at the low end is never ahead,
    and costs at most that much of the window; capped at half the window, so a poor
    measurement still leaves the request time to arrive. (A paper replay at speed 3600 sees
    uncertainties of seconds: every real millisecond of round trip is 3.6 s of its clock.)
    """
    return offset.offset_ms - min(offset.uncertainty_ms, recv_window_ms // 2)


@dataclass(frozen=True, slots=True)
class ClockVerdict:
    ok: bool
    reason: str  # why orders are refused; "" when ok


class ClockGuard:
    """Decides whether orders may be sent given the last measured offset and ``now_ms``.

    Refuses when the offset is unknown, when its uncertainty (half the round trip) exceeds
    ``max_offset_ms`` (the exchange is too far away to tell), when |offset| exceeds it (the
    host clock is off; fix NTP), or when the measurement is older than ``max_age_ms``
    (re-measure first).
    """

    def __init__(self, *, max_offset_ms: int, max_age_ms: int) -> None:
        if max_offset_ms <= 0 or max_age_ms <= 0:
            raise ValueError("max_offset_ms and max_age_ms must be positive")
        self.max_offset_ms = max_offset_ms
        self.max_age_ms = max_age_ms

    def is_stale(self, offset: ClockOffset | None, *, now_ms: int) -> bool:
        return offset is None or now_ms - offset.measured_at_ms > self.max_age_ms

    def check(
        self, offset: ClockOffset | None, *, now_ms: int, protective: bool = False
    ) -> ClockVerdict:
        """``protective``: a stop or close for a position that exists. Requests are stamped
        with the measured offset, so the exchange accepts them whatever the host clock
        says: an offset beyond the bound (the host clock is wrong) does not refuse them;
        an unknown, uncertain or stale offset does (the stamp itself would be a guess)."""
        if offset is None:
            return ClockVerdict(False, "exchange clock offset not measured yet")
        bound = self.max_offset_ms
        if offset.uncertainty_ms > bound:
            # Checked first: an offset this uncertain says nothing about the host clock.
            round_trip = (
                offset.round_trip_ms
                if offset.round_trip_ms is not None
                else 2 * offset.uncertainty_ms  # an offset from elsewhere: about that
            )
            return ClockVerdict(
                False,
                f"round trip {round_trip} ms too slow to measure the clock within the bound "
                f"of {bound} ms (offset uncertainty {offset.uncertainty_ms} ms)",
            )
        if abs(offset.offset_ms) > bound and not protective:
            if abs(offset.offset_ms) - offset.uncertainty_ms > bound:
                why = "fix the host's time synchronisation"
            else:  # the true offset may still be within the bound
                why = f"uncertainty {offset.uncertainty_ms} ms from the round trips"
            return ClockVerdict(
                False, f"clock offset {offset.offset_ms} ms exceeds the bound of {bound} ms ({why})"
            )
        age = now_ms - offset.measured_at_ms
        if age > self.max_age_ms:
            return ClockVerdict(
                False, f"clock offset measured {age} ms ago, older than {self.max_age_ms} ms"
            )
        return ClockVerdict(True, "")

    def require(
        self, offset: ClockOffset | None, *, now_ms: int, protective: bool = False
    ) -> ClockOffset:
        """The offset if orders may be sent, else ClockNotSyncedError with the reason."""
        verdict = self.check(offset, now_ms=now_ms, protective=protective)
        if not verdict.ok or offset is None:
            raise ClockNotSyncedError(f"orders refused: {verdict.reason}")
        return offset
