"""The last measured exchange clock offset, kept in the journal for ``trendbotd status``
(the one-row ``clock_offset`` table).

Informational only: the daemon never trusts a journalled offset, it measures afresh at
every start.
"""

from __future__ import annotations

from trendbotd.core.domain import ClockOffset
from trendbotd.journal.store import Journal


def record_clock_offset(journal: Journal, offset: ClockOffset, *, now_ms: int) -> None:
    with journal.db.tx() as conn:
        conn.execute(
            "INSERT OR REPLACE INTO clock_offset (id, offset_ms, uncertainty_ms, measured_at_ms, "
            "samples, round_trip_ms, updated_ms) VALUES (1, ?, ?, ?, ?, ?, ?)",
            (
                offset.offset_ms,
                offset.uncertainty_ms,
                offset.measured_at_ms,
                offset.samples,
                offset.round_trip_ms,
                now_ms,
            ),
        )


def journalled_clock_offset(journal: Journal) -> ClockOffset | None:
    """The last recorded offset, or None when none was recorded."""
    rows = journal.db.read(
        "SELECT offset_ms, uncertainty_ms, measured_at_ms, samples, round_trip_ms FROM clock_offset"
    )
    if not rows:
        return None
    offset_ms, uncertainty_ms, measured_at_ms, samples, round_trip = rows[0]
    return ClockOffset(
        offset_ms=int(offset_ms),
        uncertainty_ms=int(uncertainty_ms),
        measured_at_ms=int(measured_at_ms),
        samples=int(samples),
        round_trip_ms=None if round_trip is None else int(round_trip),
    )
