from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from orders_fakes import FakeExchange

from trendbotd.config import Config, InstanceConfig
from trendbotd.core.clock import ManualClock
from trendbotd.errors import JournalError
from trendbotd.trading.compose.journal import (
    build_position_manager,
    journal_location,
    open_instance_journal,
)
from trendbotd.trading.crashpoints import CrashPoints, NoCrashPoints


def config(tmp_path: Path) -> Config:
    return dataclasses.replace(
        Config(), instance=InstanceConfig(name="alpha", state_dir=tmp_path / "state")
    )


def test_journal_lands_in_the_state_dir_named_after_the_instance(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    with open_instance_journal(cfg) as journal:
        assert journal.path == tmp_path / "state" / "alpha.db"
    state, path = journal_location(cfg, create=False)
    assert (state.source, path.exists()) == ("config", True)


def test_corrupt_instance_journal_stops_startup(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "alpha.db").write_bytes(b"\x00garbage" * 64)
    with pytest.raises(JournalError):
        open_instance_journal(cfg)


def test_crash_points_are_read_once_at_construction(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    with open_instance_journal(cfg) as journal:
        plain = build_position_manager(
            cfg, journal=journal, exchange=FakeExchange(), clock=ManualClock(0), env={}
        )
        armed = build_position_manager(
            cfg,
            journal=journal,
            exchange=FakeExchange(),
            clock=ManualClock(0),
            env={"TRENDBOTD_CRASH_AT": "mid_close@2"},
        )
    assert isinstance(plain.executor.crash, NoCrashPoints)
    assert isinstance(armed.executor.crash, CrashPoints)
    assert (armed.executor.crash.step, armed.executor.crash.nth) == ("mid_close", 2)
    assert plain.symbols == cfg.trading.symbols
    assert plain.executor.policy.absent_settle_ms == cfg.exchange.recv_window_ms + 1000
