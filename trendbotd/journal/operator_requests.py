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
from trendbotd.journal.store import Journal

logger = logging.getLogger(__name__)

REQUEST_KEY = "operator_flatten_request"  # the newest flatten request (JSON)
DONE_KEY = "operator_flatten_done"  # "<id>: <outcome>" of the last one executed


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
    """Halted and the request, in one transaction: from here on nothing enters."""
    values = {REQUEST_KEY: request.to_json()}
    if journal.controls.mode().mode is not TradingMode.HALTED:
        values |= {
            "mode": TradingMode.HALTED.value,
            "mode_reason": request.reason,
            "mode_since_ms": str(request.at_ms),
        }
    journal.controls.set_values(values, now_ms=request.at_ms)
    logger.warning("operator.flatten_requested id=%s reason=%s", request.id, request.reason)


def pending_flatten(journal: Journal) -> FlattenRequest | None:
    text = journal.controls.get_value(REQUEST_KEY)
    if not text:
        return None
    request = FlattenRequest.from_json(text)
    done = journal.controls.get_value(DONE_KEY) or ""
    return None if done.partition(":")[0] == request.id else request


def finish_flatten(journal: Journal, request: FlattenRequest, outcome: str, *, now_ms: int) -> None:
    journal.controls.set_values({DONE_KEY: f"{request.id}: {outcome}"}, now_ms=now_ms)


def last_flatten_outcome(journal: Journal) -> str | None:
    done = journal.controls.get_value(DONE_KEY)
    return None if done is None else done.partition(":")[2].strip()


def flatten_status_line(journal: Journal) -> str | None:
    """``trendbotd status``: the flatten still to do, or how the last one ended."""
    pending = pending_flatten(journal)
    if pending is not None:
        since = dt.datetime.fromtimestamp(pending.at_ms / 1000, tz=dt.UTC)
        return f"flatten:   pending since {since:%Y-%m-%d %H:%M:%S} UTC ({pending.reason})"
    outcome = last_flatten_outcome(journal)
    return None if outcome is None else f"flatten:   last one {outcome}"
