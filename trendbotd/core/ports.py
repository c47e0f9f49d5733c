"""Protocols the engine talks to. Concrete adapters live in trendbotd.adapters/.service.

The engine and the pure core import only this module and trendbotd.core.domain, never ccxt,
sqlite3, sdnotify or fcntl.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from trendbotd.core.domain import (
    AccountMode,
    Balance,
    Candle,
    ClockOffset,
    Market,
    Order,
    OrderRequest,
    Position,
)


class Notifier(Protocol):
    """The service manager's view of us (sd_notify). A no-op outside systemd."""

    def ready(self, status: str) -> None: ...
    def status(self, text: str) -> None: ...
    def watchdog(self) -> None: ...
    def extend_timeout(self, seconds: float) -> None: ...
    def reloading(self) -> None: ...
    def stopping(self, status: str) -> None: ...

    @property
    def watchdog_interval_s(self) -> float | None:
        """Half of WATCHDOG_USEC in seconds, or None when no watchdog is armed."""
        ...


class Exchange(Protocol):
    """One exchange account, already authenticated. Every call may raise a subclass of
    trendbotd.errors.ExchangeError; order-changing calls raise OutcomeUnknownError when
    the request may have been executed."""

    def load_markets(self, symbols: Sequence[str]) -> dict[str, Market]: ...
    def measure_clock(self) -> ClockOffset: ...
    def server_now_ms(self) -> int:
        """The exchange's time as far as we know it: local clock plus the measured offset."""
        ...

    def fetch_account_mode(self) -> AccountMode: ...
    def fetch_balance(self) -> Balance: ...
    def fetch_positions(self, symbols: Sequence[str]) -> list[Position]: ...
    def fetch_open_orders(self, symbols: Sequence[str]) -> list[Order]:
        """Plain and conditional (algo) open orders together."""
        ...

    def fetch_candles(
        self, symbol: str, *, timeframe: str, since_ms: int | None, limit: int
    ) -> list[Candle]:
        """Candles in ascending time; may include the still-forming last bar."""
        ...

    def create_order(self, request: OrderRequest) -> Order: ...
    def fetch_order_by_client_id(
        self, symbol: str, client_order_id: str, *, conditional: bool
    ) -> Order | None:
        """None only when the exchange confirms no such order exists."""
        ...

    def cancel_order_by_client_id(
        self, symbol: str, client_order_id: str, *, conditional: bool
    ) -> Order: ...
    def set_leverage(self, symbol: str, leverage: int) -> None: ...
    def reads_tried_once(self) -> AbstractContextManager[None]:
        """Within the block each read is one request: for a caller that retries whole steps
        itself (the startup sync), so that no request is retried at two levels."""
        ...

    def close(self) -> None: ...


class StartupProgress(Protocol):
    """How startup sync reports to the lifecycle (STATUS= lines, EXTEND_TIMEOUT_USEC)."""

    def step(self, text: str) -> None:
        """Announce a startup step: becomes STATUS= and a log line."""
        ...

    def waiting(self, seconds: float) -> None:
        """About to wait or retry for ``seconds``: extends the service manager's start timeout."""
        ...
