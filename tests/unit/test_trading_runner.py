"""The trading runner over a stand-in assembly: what it does when start-up fails, before
any part exists (the composition root hands it the parts, so no exchange is needed)."""

from __future__ import annotations

import pytest
from support.alert_sink import RecordingSink
from support.startup_steps import RecordedProgress

from trendbotd.config import Config
from trendbotd.core.ports import StartupProgress
from trendbotd.errors import (
    CredentialsError,
    JournalError,
    TransientExchangeError,
    TrendbotError,
)
from trendbotd.service.notify import NullNotifier
from trendbotd.trading.parts import TradingParts
from trendbotd.trading.runner import TradingRunner


class FailingAssembly:
    def __init__(self, error: TrendbotError) -> None:
        self.error = error
        self.closed = 0

    def start(self, progress: StartupProgress) -> TradingParts:
        progress.step("opening journal")
        raise self.error

    def close(self) -> None:
        self.closed += 1


@pytest.mark.parametrize(
    ("error", "event"),
    [
        (JournalError("journal.db: file is not a database"), "journal.error"),
        (CredentialsError("no such credential"), "credentials.rejected"),
    ],
)
def test_a_fatal_start_is_alerted_and_stop_closes_what_was_opened(
    error: TrendbotError, event: str
) -> None:
    assembly, sink, steps = FailingAssembly(error), RecordingSink(), RecordedProgress()
    runner = TradingRunner(Config(), assembly=assembly, notifier=NullNotifier(), alerts=sink)
    with pytest.raises(type(error)):
        runner.start(steps)
    assert steps.steps == ["opening journal"]
    assert sink.events == [(event, {"error": str(error), "exit_code": int(error.exit_code)})]
    assert runner.journal is None
    runner.stop()
    assert assembly.closed == 1
    with pytest.raises(RuntimeError, match="before start"):
        runner.tick()


def test_a_transient_start_failure_is_not_alerted() -> None:
    assembly, sink = FailingAssembly(TransientExchangeError("502 Bad Gateway")), RecordingSink()
    runner = TradingRunner(Config(), assembly=assembly, notifier=NullNotifier(), alerts=sink)
    with pytest.raises(TransientExchangeError):
        runner.start(RecordedProgress())
    runner.stop()
    assert sink.events == []
    assert assembly.closed == 1
