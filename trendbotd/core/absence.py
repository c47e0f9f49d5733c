"""Whether to believe "no such order" for an entry. Pure.

Binance's order queries can lag its matching engine: an entry that executed may answer
-2013 "Order does not exist" for a while. Believing that re-sends the entry (the same
client id is accepted again once the first order is no longer open) or abandons it and
lets the engine enter afresh: a doubled position. The position is the second witness.
An entry that executed unseen shows as more position on its side than the journal
expects; while it does, "absent" is doubted: asked again after more settle intervals,
then the intent stays UNKNOWN (the symbol is not traded) and is asked again on each sync
until a bound, after which it is abandoned without a re-send and the reconciliation
reports the unexplained position.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal

from trendbotd.core.domain import ZERO, Side

DOUBT_SETTLE_INTERVALS = 3  # extra settle intervals of waiting before UNKNOWN
RESOLVE_LIMIT_MS = 120_000  # after this (from the send) a doubted absence is abandoned


class AbsentVerdict(enum.Enum):
    BELIEVE = "believe"  # absent: the position agrees, re-send or abandon as usual
    WAIT = "wait"  # doubted: wait a settle interval, then ask again
    UNKNOWN = "unknown"  # doubted: stay UNKNOWN, ask again on the next sync
    GIVE_UP = "give_up"  # doubted past the bound: abandon, never re-send


@dataclass(frozen=True, slots=True)
class AbsenceFacts:
    side: Side  # the entry's
    expected: Decimal  # the journal's expected position on the symbol (signed)
    actual: Decimal | None  # the exchange's (signed); None: it could not be read
    sent_ms: int  # when the last request for the intent left
    now_ms: int
    settle_ms: int  # the executor's absent settle time


def unexplained(facts: AbsenceFacts) -> Decimal:
    """Position on the entry's side beyond what the journal expects (0: none)."""
    if facts.actual is None:
        return ZERO
    extra = facts.actual - facts.expected
    return max(ZERO, extra if facts.side is Side.BUY else -extra)


def judge_absent(facts: AbsenceFacts) -> AbsentVerdict:
    """What to do with an entry the exchange says it does not know (after the settle)."""
    if facts.actual is not None and unexplained(facts) == 0:
        return AbsentVerdict.BELIEVE
    age = facts.now_ms - facts.sent_ms
    if age < facts.settle_ms * (1 + DOUBT_SETTLE_INTERVALS):
        return AbsentVerdict.WAIT
    if age >= RESOLVE_LIMIT_MS:
        return AbsentVerdict.GIVE_UP
    return AbsentVerdict.UNKNOWN
