"""The mode a sync leaves behind: reduce-only entered on a reason that then stays true.

The decision table is pure; the scenario runs the real PositionManager, executor and
SQLite journal against the in-memory exchange (orders_fakes)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import orders_fakes
import pytest
from orders_fakes import SYMBOL, T0, FakeExchange

from trendbotd.core.clock import ManualClock
from trendbotd.core.domain import (
    OrderRequest,
    OrderType,
    Side,
)
from trendbotd.core.records import ModeState, TradingMode
from trendbotd.errors import InvalidOrderError
from trendbotd.journal.status import collect, format_status, status_dict
from trendbotd.trading.sync_mode import ModeAction, ModeDecision, decide, shown_reason

D = Decimal
NORMAL = ModeState(TradingMode.NORMAL, "", 0)
REDUCE = ModeState(TradingMode.REDUCE_ONLY, "A; B", T0)


@pytest.mark.parametrize(
    ("mode", "automatic", "resolved", "found", "decision"),
    [
        (NORMAL, False, False, None, ModeDecision(ModeAction.NONE)),
        (NORMAL, False, False, "A", ModeDecision(ModeAction.ENTER, "A")),
        (REDUCE, True, False, "A; B", ModeDecision(ModeAction.NONE)),  # still all true
        (REDUCE, True, False, "A", ModeDecision(ModeAction.RESTATE, "A")),  # B put right
        (REDUCE, True, False, None, ModeDecision(ModeAction.RESOLVED)),
        (REDUCE, True, True, None, ModeDecision(ModeAction.NONE)),  # said once
        (REDUCE, True, True, "A; B", ModeDecision(ModeAction.RESTATE, "A; B")),  # back again
        (REDUCE, False, False, "A", ModeDecision(ModeAction.NONE)),  # not ours to reword
        (REDUCE, False, False, None, ModeDecision(ModeAction.NONE)),
        (ModeState(TradingMode.HALTED, "x", T0), False, False, None, ModeDecision(ModeAction.NONE)),
    ],
)
def test_decisions(
    mode: ModeState, automatic: bool, resolved: bool, found: str | None, decision: ModeDecision
) -> None:
    assert decide(mode=mode, automatic=automatic, resolved=resolved, found=found) == decision


class Bot(orders_fakes.Bot):
    def sync(self) -> None:
        self.clock.advance(60_000)
        self.pm.sync(self.snapshot())

    def status_text(self) -> str:
        return format_status(collect(self.journal), now_ms=self.clock.now_ms())


@pytest.fixture
def bot(tmp_path: Path) -> Iterator[Bot]:
    b = Bot(tmp_path / "bot.db", FakeExchange(), ManualClock(T0))
    yield b
    b.journal.close()


NO_STOP = f"no stop could be placed for {SYMBOL}"
HAND = f"{SYMBOL}: position 0.5 opened outside the bot (the journal expects none)"


def test_the_no_stop_reason_goes_once_a_stop_protects_the_position(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    bot.fake.positions[SYMBOL] = D("0.5")  # opened by hand while the bot was down
    # the emergency stop sync places for it is refused
    bot.fake.fault("create_order", InvalidOrderError("refused (-4014)", code=-4014))
    bot.sync()
    entered = bot.journal.controls.mode()
    assert entered.mode is TradingMode.REDUCE_ONLY
    assert entered.reason == f"{HAND}; {NO_STOP}"
    assert f"mode:      reduce_only - {HAND}; {NO_STOP}" in bot.status_text()

    # The operator puts a stop on it by hand: the position is protected now.
    bot.fake.create_order(
        OrderRequest(
            SYMBOL,
            Side.SELL,
            OrderType.STOP_MARKET,
            D("0.5"),
            "web_stop",
            stop_price=D(40000),
            reduce_only=True,
        )
    )
    with caplog.at_level(logging.WARNING, logger="trendbotd.trading.sync_mode"):
        bot.sync()
    restated = bot.journal.controls.mode()
    assert restated.mode is TradingMode.REDUCE_ONLY  # still a hand-made position: a human looks
    assert restated.since_ms == entered.since_ms
    assert NO_STOP not in restated.reason
    assert "unknown open order web_stop" in restated.reason  # the hand-made stop, said as such
    assert NO_STOP not in bot.status_text()
    assert "mode.reason_changed mode=reduce_only" in caplog.text

    # Both put right by hand (position closed, stop canceled): nothing holds any more.
    bot.fake.positions[SYMBOL] = D(0)
    bot.fake.cancel_order_by_client_id(SYMBOL, "web_stop", conditional=True)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="trendbotd.trading.sync_mode"):
        bot.sync()
    resolved_at = bot.clock.now_ms()
    mode = bot.journal.controls.mode()
    assert mode.mode is TradingMode.REDUCE_ONLY  # sticky until `trendbotd resume`
    assert mode.reason == restated.reason  # kept as why it was entered ...
    text = bot.status_text()
    assert "mode:      reduce_only - entered for what no longer holds since " in text  # ... never
    assert f"({restated.reason}); trendbotd resume to trade again" in text  # shown as current
    assert status_dict(collect(bot.journal))["mode_resolved_ms"] == resolved_at
    assert shown_reason(bot.journal, mode) == (  # STATUS= says it too
        f"no longer holds: {restated.reason}; trendbotd resume to trade again"
    )
    assert "mode.reason_resolved mode=reduce_only" in caplog.text
    assert "the mode stays until `trendbotd resume`" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="trendbotd.trading.sync_mode"):
        bot.sync()
    assert caplog.text == ""  # said once, not at every tick
    assert status_dict(collect(bot.journal))["mode_resolved_ms"] == resolved_at

    # The operator resumes; a new hand-made position enters reduce-only afresh.
    bot.journal.controls.resume(
        reason="checked", now_ms=bot.clock.now_ms(), rebase_daily_start=False
    )
    assert bot.journal.controls.mode().mode is TradingMode.NORMAL
    bot.fake.positions[SYMBOL] = D("0.5")
    bot.fake.fault("create_order", InvalidOrderError("refused (-4014)", code=-4014))
    bot.sync()
    again = bot.journal.controls.mode()
    assert (again.mode, again.reason) == (TradingMode.REDUCE_ONLY, f"{HAND}; {NO_STOP}")
    assert status_dict(collect(bot.journal))["mode_resolved_ms"] is None


def test_a_mode_not_entered_by_a_sync_is_left_alone(bot: Bot) -> None:
    bot.journal.controls.set_mode(
        TradingMode.HALTED, reason="operator: exchange maintenance", now_ms=T0
    )
    bot.fake.positions[SYMBOL] = D("0.5")
    bot.sync()
    bot.fake.positions[SYMBOL] = D(0)
    bot.sync()
    mode = bot.journal.controls.mode()
    assert (mode.mode, mode.reason) == (TradingMode.HALTED, "operator: exchange maintenance")
    assert "mode:      halted - operator: exchange maintenance" in bot.status_text()
