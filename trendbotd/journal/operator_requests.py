"""``trendbotd halt`` and ``trendbotd flatten``: what they write to the journal, and what
whoever holds the instance lock (the daemon, or the command itself when the daemon is down)
does about it.

Halt is the journal's mode ``halted``: no new entries, while stops, trailing stops and
exits are still managed (a halt must never leave a position unprotected). The engine and
the executor read the mode before each entry, so a halt holds from the moment it is
journalled; waking the daemon only makes it say so at once. Flatten is a request
journalled together with the halt (one transaction, so nothing re-enters once it is
flat); the lock holder executes it -- cancel resting entries, close at market with
reduce-only orders, cancel the stops once the exchange shows the symbol flat -- and
records it done. A request survives a crash of whoever executes it: the next holder of
the lock runs it at start-up. A newer request replaces an older one that was never run.

The planning functions are pure; the rest reads and writes a Journal.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from trendbotd.core.records import ModeState, TradingMode
from trendbotd.journal.controls import write_mode
from trendbotd.journal.store import Journal

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FlattenRequest:
    id: str  # "<at_ms>-<pid>": unique per command invocation
    symbols: tuple[str, ...] | None  # None: every configured symbol (--all)
    operator: str
    note: str
    at_ms: int

    @property
    def target(self) -> str:
        return "all symbols" if self.symbols is None else ", ".join(self.symbols)

    @property
    def reason(self) -> str:
        """The halt's reason and the close orders' reason."""
        text = f"flatten {self.target} requested by {self.operator}"
        return text + (f": {self.note}" if self.note else "")

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "symbols": None if self.symbols is None else list(self.symbols),
                "operator": self.operator,
                "note": self.note,
                "at_ms": self.at_ms,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> FlattenRequest:
        raw = json.loads(text)
        symbols = raw["symbols"]
        return cls(
            id=str(raw["id"]),
            symbols=None if symbols is None else tuple(str(s) for s in symbols),
            operator=str(raw["operator"]),
            note=str(raw["note"]),
            at_ms=int(raw["at_ms"]),
        )

    def resolve(self, configured: Sequence[str]) -> tuple[str, ...]:
        """The symbols to flatten: all configured ones, or the chosen ones."""
        return tuple(configured) if self.symbols is None else self.symbols


def halt_reason(operator: str, note: str) -> str:
    return f"halted by {operator}" + (f": {note}" if note else "")


@dataclass(frozen=True, slots=True)
class HaltPlan:
    set_halted: bool
    summary: str


def plan_halt(previous: ModeState, *, running: bool) -> HaltPlan:
    """Halt unless already halted (the first halt's reason stays the record)."""
    if previous.mode is TradingMode.HALTED:
        return HaltPlan(False, f"already halted ({previous.reason or 'no reason recorded'})")
    when = "the daemon has been told" if running else "the daemon is not running"
    was = f" (was {previous.mode}: {previous.reason})" if previous.reason else ""
    return HaltPlan(
        True,
        f"halted: no new entries, stops and exits still managed{was}; {when}; "
        "`trendbotd resume` trades again",
    )


def check_symbols(chosen: Sequence[str], configured: Sequence[str]) -> list[str]:
    """The chosen symbols this instance does not trade (the command refuses them, 64)."""
    return [s for s in chosen if s not in configured]


# ----- the journal -----


def halt(journal: Journal, *, reason: str, now_ms: int, running: bool) -> HaltPlan:
    plan = plan_halt(journal.controls.mode(), running=running)
    if plan.set_halted:
        journal.controls.set_mode(TradingMode.HALTED, reason=reason, now_ms=now_ms)
    return plan


def request_flatten(journal: Journal, request: FlattenRequest) -> None:
    """Halted and the request, in one transaction: from here on nothing enters. The request
    replaces an older one; the record of the last one done stays."""
    symbols = None if request.symbols is None else json.dumps(list(request.symbols))
    with journal.db.tx() as conn:
        conn.execute(
            "INSERT INTO flatten_request (id, request_id, symbols, operator, note, at_ms) "
            "VALUES (1, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
            "request_id = excluded.request_id, symbols = excluded.symbols, "
            "operator = excluded.operator, note = excluded.note, at_ms = excluded.at_ms",
            (request.id, symbols, request.operator, request.note, request.at_ms),
        )
        mode = conn.execute("SELECT mode FROM controls").fetchone()[0]
        if mode != TradingMode.HALTED.value:
            write_mode(conn, TradingMode.HALTED, reason=request.reason, now_ms=request.at_ms)
    logger.warning("operator.flatten_requested id=%s reason=%s", request.id, request.reason)


@dataclass(frozen=True, slots=True)
class FlattenDone:
    id: str  # the request it carried out
    outcome: str
    at_ms: int | None  # None: recorded before the journal kept the time


@dataclass(frozen=True, slots=True)
class FlattenState:
    """``trendbotd status``: the request still to carry out, and the last one carried out."""

    pending: FlattenRequest | None = None
    last_done: FlattenDone | None = None


def flatten_state(journal: Journal) -> FlattenState:
    rows = journal.db.read(
        "SELECT request_id, symbols, operator, note, at_ms, done_request_id, done_outcome, "
        "done_ms FROM flatten_request"
    )
    if not rows:
        return FlattenState()
    rid, symbols, operator, note, at_ms, done_id, outcome, done_ms = rows[0]
    request = FlattenRequest(
        id=str(rid),
        symbols=None if symbols is None else tuple(str(s) for s in json.loads(symbols)),
        operator=str(operator),
        note=str(note),
        at_ms=int(at_ms),
    )
    done = (
        None
        if done_id is None
        else FlattenDone(str(done_id), str(outcome), None if done_ms is None else int(done_ms))
    )
    return FlattenState(None if done_id == request.id else request, done)


def pending_flatten(journal: Journal) -> FlattenRequest | None:
    return flatten_state(journal).pending


def finish_flatten(journal: Journal, request: FlattenRequest, outcome: str, *, now_ms: int) -> None:
    with journal.db.tx() as conn:
        conn.execute(
            "UPDATE flatten_request SET done_request_id = ?, done_outcome = ?, done_ms = ?",
            (request.id, outcome, now_ms),
        )


def last_flatten_outcome(journal: Journal) -> str | None:
    done = flatten_state(journal).last_done
    return None if done is None else done.outcome


def _utc(ms: int) -> str:
    return f"{dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC):%Y-%m-%d %H:%M:%S} UTC"


def flatten_lines(state: FlattenState) -> list[str]:
    """Pure, for ``trendbotd status``: the flatten still to do, or how the last one ended,
    then the request ids and times."""
    pending, done = state.pending, state.last_done
    lines: list[str] = []
    if pending is not None:
        lines.append(f"flatten:   pending since {_utc(pending.at_ms)} ({pending.reason})")
        lines.append(f"  pending request {pending.id}: {pending.target}")
    elif done is not None:
        lines.append(f"flatten:   last one {done.outcome}")
    if done is not None:
        at = "" if done.at_ms is None else f" at {_utc(done.at_ms)}"
        lines.append(f"  last done: request {done.id}{at}: {done.outcome}")
    return lines


def flatten_status_line(journal: Journal) -> str | None:
    """The first line of ``flatten_lines``: the flatten still to do, or how the last one ended."""
    lines = flatten_lines(flatten_state(journal))
    return lines[0] if lines else None
