"""Data for ``trendbotd status``: read from the journal (read-only), formatted purely.

Safe while the daemon runs: the journal is opened with ``mode=ro`` and WAL lets readers
see the last committed state without blocking the writer.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from trendbotd.core.domain import ClockOffset
from trendbotd.core.reconcile import covering_stop_intents
from trendbotd.core.records import (
    DailyStart,
    Intent,
    ModeState,
    PositionView,
)
from trendbotd.journal.clock_record import journalled_clock_offset
from trendbotd.journal.operator_requests import FlattenState, flatten_lines, flatten_state
from trendbotd.journal.store import Journal, open_journal
from trendbotd.trading.sync_mode import resolved_since_ms


@dataclass(frozen=True, slots=True)
class StatusReport:
    journal_path: Path
    schema_version: int
    mode: ModeState
    last_tick_ms: int | None
    last_sync_ms: int | None
    positions: tuple[PositionView, ...]  # as seen at the last sync, with their stops
    expected: dict[str, Decimal]  # what the journal expects now
    open_intents: tuple[Intent, ...]  # non-final journal entries
    daily_start: DailyStart | None
    recent_blocks: tuple[tuple[int, str, str, str], ...]  # (at_ms, symbol, guard, reason)
    clock: ClockOffset | None  # the last offset the daemon measured, if journalled
    mode_resolved_ms: int | None  # since when the mode's reason no longer holds
    flatten: FlattenState  # the operator's flatten: pending, last done

    def stop_covered(self, symbol: str, position: Decimal) -> Decimal | None:
        """What the daemon's own open stops on ``symbol`` that close ``position`` still
        cover (None: no such stop; one on the wrong side protects nothing)."""
        stops = [
            i.amount - i.filled for i in covering_stop_intents(self.open_intents, symbol, position)
        ]
        return sum(stops, Decimal(0)) if stops else None


def collect(journal: Journal) -> StatusReport:
    sync = journal.account.last_sync()
    mode = journal.controls.mode()
    blocks = tuple(
        (at, symbol, guard, reason)
        for at, symbol, guard, allowed, reason in journal.decisions.guard_decisions(limit=5)
        if not allowed
    )
    return StatusReport(
        journal_path=journal.path,
        schema_version=journal.schema_version,
        mode=mode,
        last_tick_ms=journal.controls.last_tick_ms(),
        last_sync_ms=sync[0] if sync else None,
        positions=tuple(sync[1]) if sync else (),
        expected=journal.account.expected_positions(),
        open_intents=tuple(journal.orders.non_final_intents()),
        daily_start=journal.controls.daily_start(),
        recent_blocks=blocks,
        clock=journalled_clock_offset(journal),
        mode_resolved_ms=resolved_since_ms(journal, mode),
        flatten=flatten_state(journal),
    )


def read_status(path: Path) -> StatusReport:
    """Open the journal read-only, collect, close. Raises JournalError if unreadable."""
    with open_journal(path, read_only=True) as journal:
        return collect(journal)


def _when(ms: int | None, now_ms: int) -> str:
    if ms is None:
        return "never"
    stamp = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    age_s = max(0, (now_ms - ms) // 1000)
    return f"{stamp} ({age_s}s ago)"


def _mode_why(report: StatusReport, now_ms: int) -> str:
    reason = report.mode.reason
    if report.mode_resolved_ms is not None:
        # never shown as if it still held: it is why the mode was entered
        return (
            f" - entered for what no longer holds since {_when(report.mode_resolved_ms, now_ms)}"
            f" ({reason}); trendbotd resume to trade again"
        )
    return f" - {reason}" if reason else ""


def format_status(report: StatusReport, *, now_ms: int) -> str:
    """Human-readable, one fact per line."""
    mode = report.mode
    lines = [
        f"journal:   {report.journal_path} (schema v{report.schema_version})",
        f"mode:      {mode.mode}" + _mode_why(report, now_ms),
        f"last tick: {_when(report.last_tick_ms, now_ms)}",
        f"last sync: {_when(report.last_sync_ms, now_ms)}",
    ]
    if report.clock is not None:
        c = report.clock
        trip = f", round trip {c.round_trip_ms} ms" if c.round_trip_ms is not None else ""
        lines.append(
            f"clock:     exchange {c.offset_ms:+d} ms (±{c.uncertainty_ms} ms{trip}), "
            f"measured {_when(c.measured_at_ms, now_ms)}"
        )
    if report.daily_start is not None:
        lines.append(f"day start equity: {report.daily_start.equity}")
    lines.append("positions (as last seen):")
    if not report.positions:
        lines.append("  none")
    for p in report.positions:
        stop = (
            f"stop {p.stop_price} ({p.stop_client_order_id})"
            if p.stop_price is not None
            else "NO STOP"
        )
        lines.append(f"  {p.symbol} {p.amount} @ {p.entry_price}  {stop}")
    seen = {p.symbol: p.amount for p in report.positions}
    for symbol, amount in sorted(report.expected.items()):
        if seen.get(symbol) != amount:
            lines.append(f"  journal expects {symbol} {amount} (not what the last sync saw)")
    lines.append("unfinished orders:")
    if not report.open_intents:
        lines.append("  none")
    for i in report.open_intents:
        error = f"  last error: {i.last_error}" if i.last_error else ""
        lines.append(
            f"  {i.client_order_id} {i.state} {i.purpose} {i.side} {i.type} {i.amount} "
            f"{i.symbol} filled={i.filled}{error}"
        )
    if report.recent_blocks:
        lines.append("recent guard blocks:")
        for at, symbol, guard, reason in report.recent_blocks:
            lines.append(f"  {_when(at, now_ms)} {symbol} {guard}: {reason}")
    lines += flatten_lines(report.flatten)
    return "\n".join(lines)


def status_dict(report: StatusReport) -> dict[str, Any]:
    """The journal's part of ``trendbotd status --json``; decimals as strings. Every key
    is documented in README.md ("status --json") and pinned by a test."""
    return {
        "journal": {
            "path": str(report.journal_path),
            "exists": True,
            "schema_version": report.schema_version,
        },
        "mode": report.mode.mode.value,
        "mode_reason": report.mode.reason,
        "mode_since_ms": report.mode.since_ms or None,
        "mode_resolved_ms": report.mode_resolved_ms,
        "last_tick_ms": report.last_tick_ms,
        "last_sync_ms": report.last_sync_ms,
        "clock": None if report.clock is None else _clock_dict(report.clock),
        "daily_start_equity": (
            None if report.daily_start is None else str(report.daily_start.equity)
        ),
        "positions": [
            {
                "symbol": p.symbol,
                "amount": str(p.amount),
                "entry_price": str(p.entry_price),
                "stop_price": None if p.stop_price is None else str(p.stop_price),
                "stop_client_order_id": p.stop_client_order_id,
                "stop_covered_amount": _str_or_none(report.stop_covered(p.symbol, p.amount)),
                "seen_at_ms": p.seen_at_ms,
            }
            for p in report.positions
        ],
        "expected_positions": {s: str(a) for s, a in sorted(report.expected.items())},
        "open_orders": [
            {
                "client_order_id": i.client_order_id,
                "state": i.state.value,
                "purpose": i.purpose.value,
                "symbol": i.symbol,
                "side": i.side.value,
                "type": i.type.value,
                "amount": str(i.amount),
                "filled": str(i.filled),
                "stop_price": _str_or_none(i.stop_price),
                "created_ms": i.created_ms,
                "last_error": i.last_error,
            }
            for i in report.open_intents
        ],
        "recent_guard_blocks": [
            {"at_ms": at, "symbol": symbol, "guard": guard, "reason": reason}
            for at, symbol, guard, reason in report.recent_blocks
        ],
        "flatten": _flatten_dict(report.flatten),
    }


def absent_status_dict(journal_path: Path) -> dict[str, Any]:
    """The same keys as ``status_dict`` when the daemon never ran with this config."""
    return {
        "journal": {"path": str(journal_path), "exists": False, "schema_version": None},
        "mode": None,
        "mode_reason": None,
        "mode_since_ms": None,
        "mode_resolved_ms": None,
        "last_tick_ms": None,
        "last_sync_ms": None,
        "clock": None,
        "daily_start_equity": None,
        "positions": [],
        "expected_positions": {},
        "open_orders": [],
        "recent_guard_blocks": [],
        "flatten": _flatten_dict(FlattenState()),
    }


def _flatten_dict(state: FlattenState) -> dict[str, Any]:
    pending, done = state.pending, state.last_done
    return {
        "pending": None
        if pending is None
        else {
            "id": pending.id,
            "symbols": None if pending.symbols is None else list(pending.symbols),
            "reason": pending.reason,
            "at_ms": pending.at_ms,
        },
        "last_done": None
        if done is None
        else {"id": done.id, "outcome": done.outcome, "at_ms": done.at_ms},
    }


def _clock_dict(clock: ClockOffset) -> dict[str, Any]:
    return {
        "offset_ms": clock.offset_ms,
        "uncertainty_ms": clock.uncertainty_ms,
        "round_trip_ms": clock.round_trip_ms,
        "measured_at_ms": clock.measured_at_ms,
        "samples": clock.samples,
    }


def _str_or_none(value: Decimal | None) -> str | None:
    return None if value is None else str(value)
