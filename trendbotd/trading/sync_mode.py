"""The trading mode a sync leaves behind, with a reason that stays true.

A sync that finds what the journal cannot explain (a position opened by hand, a position
without a stop and no stop price to place one at) enters reduce-only. The mode is sticky:
only an operator's ``trendbotd resume`` trades again, because a human should look at what
happened. Its reason is not: each later sync restates what still holds, and once nothing
does, the mode is marked resolved (``trendbotd status`` says so, the log says the daemon
saw it) while the reason it was entered for stays as the record of why.

``decide`` is pure; ``keep_mode_true`` reads and writes the journal.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum

from trendbotd.core.records import ModeState, TradingMode
from trendbotd.journal.store import Journal

logger = logging.getLogger(__name__)


class ModeAction(Enum):
    NONE = "none"
    ENTER = "enter"  # reduce-only for the reason found
    RESTATE = "restate"  # an automatic mode: what holds now replaces the reason
    RESOLVED = "resolved"  # an automatic mode: nothing holds any more


@dataclass(frozen=True, slots=True)
class ModeDecision:
    action: ModeAction
    reason: str = ""


def decide(*, mode: ModeState, automatic: bool, resolved: bool, found: str | None) -> ModeDecision:
    """What to do with the mode after a sync that ``found`` this reason (None: nothing)."""
    if mode.mode is TradingMode.NORMAL:
        return ModeDecision(ModeAction.ENTER, found) if found else ModeDecision(ModeAction.NONE)
    if not automatic:
        return ModeDecision(ModeAction.NONE)  # the operator's, or older than this record
    if found is None:
        return ModeDecision(ModeAction.NONE if resolved else ModeAction.RESOLVED)
    if found != mode.reason or resolved:
        return ModeDecision(ModeAction.RESTATE, found)
    return ModeDecision(ModeAction.NONE)


def resolved_since_ms(journal: Journal, mode: ModeState) -> int | None:
    """When the current mode's reasons stopped holding, or None (still hold, or not known)."""
    resolved = journal.controls.mode_resolved()
    if mode.mode is TradingMode.NORMAL or resolved is None or resolved[0] != mode.since_ms:
        return None
    return resolved[1]


def shown_reason(journal: Journal, mode: ModeState) -> str:
    """The mode's reason as it may be shown now (STATUS=, status): never a stale one as if
    it still held."""
    if resolved_since_ms(journal, mode) is None:
        return mode.reason
    return f"no longer holds: {mode.reason}; trendbotd resume to trade again"


def keep_mode_true(journal: Journal, found: str | None, *, now_ms: int) -> ModeDecision:
    mode = journal.controls.mode()
    decision = decide(
        mode=mode,
        automatic=journal.controls.mode_auto_since_ms() == mode.since_ms,
        resolved=resolved_since_ms(journal, mode) is not None,
        found=found,
    )
    if decision.action is ModeAction.ENTER:
        journal.controls.enter_auto_mode(
            TradingMode.REDUCE_ONLY, reason=decision.reason, now_ms=now_ms
        )
    elif decision.action is ModeAction.RESTATE:
        logger.warning(
            "mode.reason_changed mode=%s was=%s now=%s", mode.mode, mode.reason, decision.reason
        )
        journal.controls.restate_mode_reason(decision.reason, now_ms=now_ms)
    elif decision.action is ModeAction.RESOLVED:
        logger.warning(
            "mode.reason_resolved mode=%s was=%s: no longer holds; the mode stays until "
            "`trendbotd resume`",
            mode.mode,
            mode.reason,
        )
        journal.controls.mark_mode_resolved(since_ms=mode.since_ms, now_ms=now_ms)
    return decision
