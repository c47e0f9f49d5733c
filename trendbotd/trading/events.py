"""Trading alerts about a change of state, raised from what the runner sees: the trading
mode, an exchange outage and back, a fatal error at start-up or in a tick."""

from __future__ import annotations

import time

from trendbotd.alerts.sink import AlertSink
from trendbotd.alerts.trading import Outage, mode_events
from trendbotd.core.records import TradingMode
from trendbotd.errors import (
    ClockSkewError,
    CredentialsError,
    ExchangeAuthError,
    ExchangeError,
    JournalError,
    OutcomeUnknownError,
    RateLimitedError,
    TransientExchangeError,
)
from trendbotd.journal.store import Journal


class TradingEvents:
    def __init__(self, alerts: AlertSink, *, unreachable_alert_s: float) -> None:
        self._alerts = alerts
        self._outage = Outage(alert_after_s=unreachable_alert_s)
        self._mode_seen = TradingMode.NORMAL

    def mode_known(self, mode: TradingMode) -> None:
        """A mode already reported (kept from the last run): no alert for it again."""
        self._mode_seen = mode

    def check_mode(self, journal: Journal) -> None:
        """Report a change of the trading mode, whoever made it (a sync, a guard, the
        operator's resume/halt): the journal holds the mode, so it is read once a tick."""
        mode = journal.controls.mode()
        for event in mode_events(self._mode_seen, mode.mode):
            self._alerts.emit(event, key="mode", mode=mode.mode.value, reason=mode.reason)
        self._mode_seen = mode.mode

    def exchange_failed(self, error: ExchangeError) -> None:
        unreachable = isinstance(error, TransientExchangeError | OutcomeUnknownError) and (
            not isinstance(error, RateLimitedError | ClockSkewError)
        )
        if not unreachable:
            self.exchange_back()  # it answered, even if with an error
            return
        now = time.monotonic()
        if self._outage.failed(now):
            self._alerts.emit(
                "exchange.unreachable",
                key="exchange",
                down_s=f"{self._outage.down_for(now):.0f}",
                error=str(error),
            )

    def exchange_back(self) -> None:
        lasted = self._outage.succeeded(time.monotonic())
        if lasted is not None:
            self._alerts.emit("exchange.back", key="exchange", down_s=f"{lasted:.0f}")

    def fatal(self, error: ExchangeAuthError | CredentialsError | JournalError) -> None:
        event = "journal.error" if isinstance(error, JournalError) else "credentials.rejected"
        self._alerts.emit(event, error=str(error), exit_code=int(error.exit_code))
