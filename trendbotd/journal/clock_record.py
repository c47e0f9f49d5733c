"""The last measured exchange clock offset, kept in the journal for ``trendbotd status``.

Informational only: the daemon never trusts a journalled offset, it measures afresh at
every start.
"""

from __future__ import annotations

from trendbotd.core.domain import ClockOffset
from trendbotd.journal.store import Journal

_KEYS = ("clock_offset_ms", "clock_uncertainty_ms", "clock_measured_at_ms", "clock_samples")
_ROUND_TRIP = "clock_round_trip_ms"


def record_clock_offset(journal: Journal, offset: ClockOffset, *, now_ms: int) -> None:
    numbers = (offset.offset_ms, offset.uncertainty_ms, offset.measured_at_ms, offset.samples)
    values = {key: str(number) for key, number in zip(_KEYS, numbers, strict=True)}
    values[_ROUND_TRIP] = "" if offset.round_trip_ms is None else str(offset.round_trip_ms)
    journal.controls.set_values(values, now_ms=now_ms)


def journalled_clock_offset(journal: Journal) -> ClockOffset | None:
    """The last recorded offset, or None when none was recorded (or the record is partial)."""
    raw = [journal.controls.get_value(key) for key in _KEYS]
    if any(value is None or not value.lstrip("-").isdigit() for value in raw):
        return None
    offset_ms, uncertainty_ms, measured_at_ms, samples = (int(v) for v in raw if v is not None)
    round_trip = journal.controls.get_value(_ROUND_TRIP)
    return ClockOffset(
        offset_ms=offset_ms,
        uncertainty_ms=uncertainty_ms,
        measured_at_ms=measured_at_ms,
        samples=samples,
        round_trip_ms=int(round_trip) if round_trip else None,
    )
