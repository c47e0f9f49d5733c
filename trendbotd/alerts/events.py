"""The catalogue of alert events: stable names an operator filters on, each with a severity.

Names are part of the interface (receivers route on them); never rename one, add a new one.
Some are not emitted yet: they are listed so channels and filters can be set up now.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final


class Severity(IntEnum):
    INFO = 20
    WARNING = 30
    ERROR = 40
    CRITICAL = 50

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.upper()]
        except KeyError:
            raise ValueError(f"unknown severity {text!r}") from None


@dataclass(frozen=True, slots=True)
class EventSpec:
    name: str
    severity: Severity
    summary: str  # the message's first words; the fields follow


_I, _W, _E, _C = Severity.INFO, Severity.WARNING, Severity.ERROR, Severity.CRITICAL

CATALOGUE: Final[dict[str, EventSpec]] = {
    spec.name: spec
    for spec in (
        # lifecycle (emitted by the service layer)
        EventSpec("daemon.started", _I, "daemon started"),
        EventSpec("daemon.ready", _I, "daemon ready (synced, trading)"),
        EventSpec("daemon.stopped", _I, "daemon stopped"),
        EventSpec("daemon.failed", _E, "daemon exited with an error"),
        EventSpec("daemon.restarted_unclean", _C, "restarted after an unclean exit"),
        EventSpec("unit.failed", _C, "unit failed"),
        # trading
        EventSpec("entry.filled", _I, "entry filled"),
        EventSpec("position.closed", _I, "position closed"),
        EventSpec("stop.placed", _I, "stop placed"),
        EventSpec("stop.moved", _I, "stop moved"),
        EventSpec("stop.failed", _C, "stop could not be placed"),
        EventSpec("position.unprotected", _C, "position without a stop found"),
        # modes and risk
        EventSpec("mode.reduce_only_entered", _W, "reduce-only mode entered"),
        EventSpec("mode.reduce_only_left", _I, "reduce-only mode left"),
        EventSpec("mode.halted_entered", _E, "halted mode entered"),
        EventSpec("mode.halted_left", _I, "halted mode left"),
        EventSpec("risk.daily_loss_limit", _E, "daily loss limit hit"),
        # the outside world
        EventSpec("clock.skew_refusing", _E, "clock skew: orders refused"),
        EventSpec("clock.skew_cleared", _I, "clock skew gone: orders allowed again"),
        EventSpec("exchange.unreachable", _E, "exchange unreachable"),
        EventSpec("exchange.back", _I, "exchange reachable again"),
        EventSpec("credentials.rejected", _C, "credentials rejected"),
        EventSpec("journal.error", _C, "journal error"),
        EventSpec("watchdog.stall", _E, "loop stalled"),
        # the alert path itself
        EventSpec("alert.test", _I, "test alert"),
    )
}


def spec_for(name: str) -> EventSpec:
    """The spec of a catalogued event; an unknown name is a programming error."""
    try:
        return CATALOGUE[name]
    except KeyError:
        raise KeyError(f"alert event {name!r} is not in the catalogue") from None
