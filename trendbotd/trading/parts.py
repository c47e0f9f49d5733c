"""What the composition root (trading/compose/) hands the trading runner: the parts it
drives, typed by what the runner needs of them, so the runner imports no adapter."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from trendbotd.core.clock import Clock
from trendbotd.core.domain import AccountSnapshot, ClockOffset
from trendbotd.core.ports import Exchange, StartupProgress
from trendbotd.core.records import TradingMode
from trendbotd.core.timesync import ClockGuard
from trendbotd.journal.store import Journal
from trendbotd.trading.positions import PositionManager

if TYPE_CHECKING:
    # the engine (numpy, the strategy) is imported only once the startup sync is done
    from trendbotd.trading.engine import Engine


class ClockedExchange(Exchange, Protocol):
    """The exchange with its clock offset kept: the runner's clock gate reads it."""

    @property
    def clock_offset(self) -> ClockOffset | None: ...

    @property
    def clock_guard(self) -> ClockGuard: ...

    def keep_clock_fresh(self) -> None: ...


@dataclass(frozen=True, slots=True)
class TradingParts:
    """Everything start-up built and synced: the runner drives these until stop."""

    journal: Journal
    exchange: ClockedExchange
    clock: Clock
    speed: float  # exchange-time milliseconds per real millisecond (a paper replay's --speed)
    positions: PositionManager
    engine: Engine
    snapshot: AccountSnapshot  # after the startup sync
    mode_before_sync: TradingMode  # a mode kept from the last run was reported then
    recorded_clock: ClockOffset | None  # the offset journalled during start-up
    end_startup: Callable[[], None]  # READY: pauses inside a tick no longer report to start-up


class Assembly(Protocol):
    """Builds and syncs the parts (each step a STATUS= line), and closes whatever it
    opened, also after a start-up that failed half way."""

    def start(self, progress: StartupProgress) -> TradingParts: ...

    def close(self) -> None: ...
