"""What the metrics say about the journal, decided purely from what ``status`` reads.

The metrics adapter calls ``journal_view`` at each scrape with the journal's read-only
status report and intent counts; nothing here touches the journal, a clock or
prometheus_client, so the numbers are table-tested.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from trendbotd.core.records import NON_FINAL_STATES, IntentState, Purpose, TradingMode
from trendbotd.journal.status import StatusReport

MODES: tuple[str, ...] = tuple(m.value for m in TradingMode)
PURPOSES: tuple[str, ...] = tuple(p.value for p in Purpose)
# An order's outcome is final once journalled as one of these; the rest are unfinished.
OUTCOMES: tuple[str, ...] = tuple(s.value.lower() for s in IntentState if s.is_final)
UNFINISHED: tuple[str, ...] = tuple(s.value.lower() for s in NON_FINAL_STATES)


@dataclass(frozen=True, slots=True)
class JournalView:
    mode: str  # one of MODES
    last_tick_s: float | None  # unix seconds of the last completed tick
    last_sync_s: float | None
    clock_offset_s: float | None  # exchange minus host, as last measured
    positions: dict[str, Decimal]  # signed amount by symbol (non-flat only)
    notional: dict[str, Decimal]  # |amount| x entry price by symbol, quote currency
    positions_without_stop: int
    unfinished_intents: dict[str, int]  # state -> count, every non-final state present
    orders: dict[tuple[str, str], int]  # (purpose, outcome) -> count, every pair present


def journal_view(
    report: StatusReport,
    counts: dict[tuple[Purpose, IntentState], int],
    *,
    reduce_only_configured: bool,
) -> JournalView:
    """``reduce_only_configured``: ``risk.reduce_only`` is set, which the engine obeys as
    reduce-only whatever the journal's mode says (``status`` shows it the same way)."""
    mode = report.mode.mode
    if mode is TradingMode.NORMAL and reduce_only_configured:
        mode = TradingMode.REDUCE_ONLY
    held = [p for p in report.positions if p.amount != 0]
    unfinished = dict.fromkeys(UNFINISHED, 0)
    for intent in report.open_intents:
        unfinished[intent.state.value.lower()] += 1
    orders = {(p, o): 0 for p in PURPOSES for o in OUTCOMES}
    for (purpose, state), n in counts.items():
        if state.is_final:
            orders[purpose.value, state.value.lower()] += n
    clock = report.clock
    return JournalView(
        mode=mode.value,
        last_tick_s=_seconds(report.last_tick_ms),
        last_sync_s=_seconds(report.last_sync_ms),
        clock_offset_s=None if clock is None else clock.offset_ms / 1000,
        positions={p.symbol: p.amount for p in held},
        notional={p.symbol: abs(p.amount) * p.entry_price for p in held},
        positions_without_stop=sum(1 for p in held if p.stop_price is None),
        unfinished_intents=unfinished,
        orders=orders,
    )


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000
