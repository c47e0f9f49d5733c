"""``trendbotd resume``: an operator lifts reduce-only / halted mode and the daily-loss stop.

The decision (``plan_resume``) is pure; ``resume_journal`` reads the facts from the
journal, applies the plan in one transaction and hands back what to print. It works
whether or not the daemon runs: the engine reads the mode and the start of day from the
journal every tick, so a resume takes effect at the next tick without a restart.

The daily-loss kill switch is not a mode: the guard compares equity with the day's start.
Resuming after it blocked drops the stored start, and the engine's next tick takes the
equity it sees then as the new start (it does so for a missing start anyway), so the loss
so far no longer counts. Resume never talks to the exchange: what it says about positions
comes from the daemon's last sync.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from trendbotd.core.domain import ZERO
from trendbotd.core.guards import DAY_MS
from trendbotd.core.records import DailyStart, ModeState, PositionView, TradingMode
from trendbotd.errors import JournalError
from trendbotd.journal.store import open_journal

DAILY_LOSS_GUARD = "daily_loss"  # the name guards.daily_loss journals its blocks under
RECENT_DECISIONS = 200  # guard decisions scanned for a daily-loss block since the day began

GuardDecision = tuple[int, str, str, bool, str]  # (at_ms, symbol, guard, allowed, reason)


@dataclass(frozen=True, slots=True)
class ResumeFacts:
    """What the journal (and the lock, and the config) say before the resume."""

    mode: ModeState
    daily_start: DailyStart | None
    decisions: Sequence[GuardDecision]  # newest first
    last_resume_ms: int | None
    last_sync: tuple[int, Sequence[PositionView]] | None
    expected: Mapping[str, Decimal]
    daemon_running: bool
    config_reduce_only: bool  # [risk] reduce_only = true: the operator's switch
    config_source: str


@dataclass(frozen=True, slots=True)
class ResumePlan:
    set_normal: bool
    rebase_daily_start: bool
    reason: str  # journalled as the mode's reason
    summary: str  # the one line that says what changed
    notes: tuple[str, ...]  # what still keeps the instance from trading, if anything

    @property
    def changes(self) -> bool:
        return self.set_normal or self.rebase_daily_start


def plan_resume(facts: ResumeFacts, *, operator: str, note: str, now_ms: int) -> ResumePlan:
    previous = facts.mode
    set_normal = previous.mode is not TradingMode.NORMAL
    since = max(now_ms // DAY_MS * DAY_MS, facts.last_resume_ms or 0)
    blocked = daily_loss_block(facts.decisions, since_ms=since)
    rebase = blocked is not None
    when = "at the daemon's next tick" if facts.daemon_running else "when the daemon starts"
    notes: list[str] = []
    if facts.config_reduce_only:
        notes.append(
            f"[risk] reduce_only = true in {facts.config_source} still keeps it reduce-only "
            "(exits only): set it to false and reload (systemctl reload, or SIGHUP)"
        )
    if not (set_normal or rebase):
        summary = f"already normal: nothing to resume (no daily-loss block since {_hhmm(since)})"
        return ResumePlan(False, False, "", summary, tuple(notes))

    parts = [f"resumed by {operator}" + (f": {note}" if note else "")]
    changed: list[str] = []
    if set_normal:
        was = f"{previous.mode}: {previous.reason or 'no reason recorded'}"
        parts.append(f"was {was}")
        changed.append(f"{previous.mode} -> normal (was {was})")
        differences = position_differences(facts.last_sync, facts.expected)
        if differences and facts.last_sync is not None:
            notes.append(
                f"the last sync ({_hhmm(facts.last_sync[0])}) still saw "
                f"{'; '.join(differences)}: unless that has been put right on the exchange, "
                "the daemon goes back to reduce-only at its next sync"
            )
    if blocked is not None:
        parts.append("daily loss counted afresh")
        start = f"day start {facts.daily_start.equity}" if facts.daily_start else "no day start"
        changed.append(
            f"daily-loss stop (blocked at {_hhmm(blocked[0])}) lifted: {start} dropped, the "
            "equity at the next tick is the new start"
        )
    reason = "; ".join(parts)
    summary = f"resumed: {'; '.join(changed)}; takes effect {when}"
    return ResumePlan(set_normal, rebase, reason, summary, tuple(notes))


def daily_loss_block(decisions: Sequence[GuardDecision], *, since_ms: int) -> GuardDecision | None:
    """The newest daily-loss block at or after ``since_ms`` (start of the UTC day, or the
    last resume if later), or None."""
    for decision in decisions:
        at, _, guard, allowed, _ = decision
        if guard == DAILY_LOSS_GUARD and not allowed and at >= since_ms:
            return decision
    return None


def position_differences(
    last_sync: tuple[int, Sequence[PositionView]] | None, expected: Mapping[str, Decimal]
) -> list[str]:
    """``symbol: exchange A, journal expects E`` for each symbol where the last sync saw
    something else than the journal expects (what reconciliation calls a mismatch)."""
    if last_sync is None:
        return []
    seen = {p.symbol: p.amount for p in last_sync[1]}
    out = []
    for symbol in sorted(set(seen) | set(expected)):
        actual, wanted = seen.get(symbol, ZERO), expected.get(symbol, ZERO)
        if actual != wanted:
            out.append(f"{symbol} {actual} on the exchange where the journal expects {wanted}")
    return out


def _hhmm(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


# ----- I/O: the journal -----


def resume_journal(
    path: Path,
    *,
    operator: str,
    note: str,
    now_ms: int,
    daemon_running: bool,
    config_reduce_only: bool,
    config_source: str,
) -> ResumePlan:
    """Open the journal read-write (a running daemon keeps writing: WAL and a busy timeout
    let both proceed), decide, apply. JournalError (65) when there is no journal."""
    if not path.is_file():
        raise JournalError(
            f"{path}: no journal for this instance (wrong --config, or the daemon has never "
            "run with it); nothing to resume"
        )
    with open_journal(path) as journal:
        facts = ResumeFacts(
            mode=journal.controls.mode(),
            daily_start=journal.controls.daily_start(),
            decisions=journal.decisions.guard_decisions(limit=RECENT_DECISIONS),
            last_resume_ms=journal.controls.last_resume_ms(),
            last_sync=journal.account.last_sync(),
            expected=journal.account.expected_positions(),
            daemon_running=daemon_running,
            config_reduce_only=config_reduce_only,
            config_source=config_source,
        )
        plan = plan_resume(facts, operator=operator, note=note, now_ms=now_ms)
        if plan.changes:
            journal.controls.resume(
                reason=plan.reason, now_ms=now_ms, rebase_daily_start=plan.rebase_daily_start
            )
    return plan
